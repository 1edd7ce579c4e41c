// The dashboard's HTTP server (node:http): server-rendered pages plus one JSON endpoint the pages poll.
// Every run is addressed by its id from discover(); nothing in a URL is used as a path.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { comparePage } from "./compare-view.js";
import { esc, page } from "./html.js";
import { indexFragment, indexPage, indexVersion, runFragment, runPage } from "./pages.js";
import { Readers } from "./run-reader.js";
import { discover, type Found } from "./runs.js";
import { samplesPage } from "./samples.js";

export interface DashboardOptions {
  root: string;
  host: string;
  port: number;
}

export interface Dashboard {
  server: Server;
  url: string;
  close(): Promise<void>;
}

class NotFound extends Error {}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const readers = new Readers();
  const server = createServer((req, res) => {
    try {
      route(req, res, o.root, readers);
    } catch (e) {
      const notFound = e instanceof NotFound;
      send(res, notFound ? 404 : 500, "text/html", page("error", `<p class="err">${esc((e as Error).message)}</p><p><a href="/">back to runs</a></p>`));
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(o.port, o.host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  return {
    server,
    url: `http://${host}:${port}/`,
    close: () => new Promise<void>((ok) => {
      readers.closeAll();
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}

function route(req: IncomingMessage, res: ServerResponse, root: string, readers: Readers): void {
  const url = new URL(req.url ?? "/", "http://dashboard");
  const p = url.searchParams;
  const found = discover(root);
  const run = (): Found => {
    const f = found.find((x) => x.kind === "run" && x.id === p.get("run"));
    if (!f) throw new NotFound(`no run '${p.get("run") ?? ""}' under ${root}`);
    return f;
  };
  switch (url.pathname) {
    case "/":
      return send(res, 200, "text/html", indexPage(found, readers, root));
    case "/run": {
      const f = run();
      return send(res, 200, "text/html", runPage(f, readers.get(f.dir)));
    }
    case "/samples": {
      const f = run();
      const it = Number(p.get("it") ?? 0);
      return send(res, 200, "text/html", samplesPage(f, readers.get(f.dir), p.get("stage") ?? "", Number.isInteger(it) ? it : 0, Math.max(0, Number(p.get("page") ?? 0) || 0)));
    }
    case "/compare":
      return send(res, 200, "text/html", comparePage(found, readers, p.get("a") ?? undefined, p.get("b") ?? undefined));
    case "/api/live": {
      if (p.get("page") === "index") return sendJson(res, { version: indexVersion(found, readers), html: indexFragment(found, readers) });
      const f = run();
      const r = readers.get(f.dir);
      const version = r.version();
      // The fragment is rendered only when something changed since the client's version.
      return sendJson(res, { version, html: p.get("since") === version ? "" : runFragment(f, r) });
    }
    default:
      throw new NotFound(`no page ${url.pathname}`);
  }
}

function send(res: ServerResponse, code: number, type: string, body: string): void {
  res.writeHead(code, { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store", "x-content-type-options": "nosniff" });
  res.end(body);
}

const sendJson = (res: ServerResponse, v: unknown) => send(res, 200, "application/json", JSON.stringify(v));
