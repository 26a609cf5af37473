"""The Lightning node: its core (`node`), keys, data directory, settings, chain follower, wallet front,
channel registry, the RPC method table (`commands`), and the peer layer (`peer*`)."""
