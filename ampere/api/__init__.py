"""The node's authenticated JSON-RPC 2.0 API, and the `ampere node` daemon that serves it.

`daemon` (the `ampere node` command), `service` (node + server until stop), `server` (HTTP, tokens),
`jsonrpc` (requests, permission, replies), `registry` (generic parameter checks), `node_methods`
(handlers), `errors` (codes and the mapping from typed errors).
"""
