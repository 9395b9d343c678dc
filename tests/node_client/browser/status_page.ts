// The browser example of docs/api.md: a page on another origin than the
// gRPC port calls Status with connect-web over gRPC-Web, using the client
// generated from proto/. `make browser-example` bundles it into
// tests/e2e/browser/status_page.js, which the end-to-end test serves from
// its own origin and opens in Chromium.
//
// The page reads `server`, `service` and `token` from its query string and
// writes what it got into <body data-result> (the environments and what
// runs there) or <body data-error> (the error's code and message).

import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ReleaseService } from "../gen/releasemanager/v1/release_service_pb.js";

async function show(): Promise<void> {
  const query = new URLSearchParams(location.search);
  const transport = createGrpcWebTransport({ baseUrl: query.get("server") ?? "" });
  const client = createClient(ReleaseService, transport);
  const token = query.get("token");
  try {
    const status = await client.status(
      { service: query.get("service") ?? "" },
      { headers: token ? { authorization: `Bearer ${token}` } : {} },
    );
    const rows = status.environments.map((env) => ({
      environment: env.environment,
      artifactId: env.artifact?.artifactId ?? "",
    }));
    document.body.dataset.result = JSON.stringify(rows);
  } catch (error) {
    const failed = ConnectError.from(error);
    document.body.dataset.error = JSON.stringify({ code: failed.code, message: failed.rawMessage });
  }
}

void show();
