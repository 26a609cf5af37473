"""The `ampere` command: daemons by name (`main.COMMANDS`) and the node's RPC client commands."""
