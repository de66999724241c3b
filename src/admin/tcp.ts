import { createConnection } from "node:net";

/** True when a TCP connection to address:port opens within `timeoutMs`. */
export function canConnect(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: address, port });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.on("connect", () => done(true));
    s.on("error", () => done(false));
  });
}
