"""An independent Lightning peer built on pyln-proto (Core Lightning's Python BOLT 8 / message code).

Run it with the interop virtualenv's python (tests/interop/setup_interop_venv.sh), never with the
project's: it must not import Ampere, so that what it checks is Ampere against someone else's code.
It serves one connection and reports what happens as JSON lines on stdout:

    pyln_peer.py listen  --key HEX                                  # {"event": "listening", "port": ...}
    pyln_peer.py connect --key HEX --node-id HEX --host H --port P

After the handshake it sends ``init``, reads the other side's, sends a ``ping`` asking 42 bytes,
answers every ``ping``, echoes custom message 32769 back as 32771, and exits when the connection ends.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import struct
import sys
from typing import Any

from pyln.proto.message import Message, MessageNamespace
from pyln.proto.wire import LightningConnection, LightningServerSocket, PrivateKey, PublicKey, connect

# BOLT 1's message definitions, in the spec's CSV form.
BOLT1_CSV = """\
msgtype,init,16
msgdata,init,gflen,u16,
msgdata,init,globalfeatures,byte,gflen
msgdata,init,flen,u16,
msgdata,init,features,byte,flen
msgdata,init,tlvs,init_tlvs,
tlvtype,init_tlvs,networks,1
tlvdata,init_tlvs,networks,chains,chain_hash,...
tlvtype,init_tlvs,remote_addr,3
tlvdata,init_tlvs,remote_addr,data,byte,...
msgtype,error,17
msgdata,error,channel_id,channel_id,
msgdata,error,len,u16,
msgdata,error,data,byte,len
msgtype,warning,1
msgdata,warning,channel_id,channel_id,
msgdata,warning,len,u16,
msgdata,warning,data,byte,len
msgtype,ping,18
msgdata,ping,num_pong_bytes,u16,
msgdata,ping,byteslen,u16,
msgdata,ping,ignored,byte,byteslen
msgtype,pong,19
msgdata,pong,byteslen,u16,
msgdata,pong,ignored,byte,byteslen
"""

NAMESPACE = MessageNamespace(BOLT1_CSV.splitlines())
REGTEST_CHAIN = bytes.fromhex("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")[::-1]
# data_loss_protect, var_onion_optin, static_remotekey, payment_secret (all optional) and an unassigned
# odd bit, which the other side must ignore.
FEATURE_BITS = (1, 9, 13, 15, 101)
ECHO_REQUEST, ECHO_REPLY = 32769, 32771
PING_ASK = 42


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def encode(name: str, **fields: Any) -> bytes:
    out = io.BytesIO()
    Message(NAMESPACE.get_msgtype(name), **fields).write(out)
    return out.getvalue()


def decode(data: bytes) -> dict[str, Any]:
    message = Message.read(NAMESPACE, io.BytesIO(data))
    assert message is not None
    fields: dict[str, Any] = message.to_py()
    return fields


def features() -> bytes:
    value = sum(1 << bit for bit in FEATURE_BITS)
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def serve(conn: LightningConnection) -> int:
    networks = {"networks": {"chains": [REGTEST_CHAIN]}}
    conn.send_message(encode("init", globalfeatures=b"", features=features(), tlvs=networks))
    first = conn.read_message()
    if struct.unpack(">H", first[:2])[0] != 16:
        emit("protocol_error", detail="first message is not init")
        return 1
    init = decode(first)
    tlvs = init.get("tlvs", {})
    emit(
        "init",
        features=init["features"],
        globalfeatures=init["globalfeatures"],
        networks=tlvs.get("networks", {}).get("chains"),
        remote_addr=tlvs.get("remote_addr", {}).get("data"),
    )
    conn.send_message(encode("ping", num_pong_bytes=PING_ASK, ignored=bytes(10)))
    echoed = 0
    while True:
        try:
            data = conn.read_message()
        except (OSError, ValueError) as exc:
            emit("closed", detail=str(exc), echoed=echoed)
            return 0
        msg_type = struct.unpack(">H", data[:2])[0]
        if msg_type == 18:
            ask = decode(data)["num_pong_bytes"]
            if ask < 65532:
                conn.send_message(encode("pong", ignored=bytes(ask)))
            emit("ping", num_pong_bytes=ask)
        elif msg_type == 19:
            emit("pong", length=len(bytes.fromhex(decode(data)["ignored"])))
        elif msg_type == ECHO_REQUEST:
            conn.send_message(struct.pack(">H", ECHO_REPLY) + data[2:])
            echoed += 1
        elif msg_type in (1, 17):
            emit("warning" if msg_type == 1 else "error", data=decode(data)["data"])
        else:
            emit("message", type=msg_type, length=len(data))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("listen", "connect"))
    parser.add_argument("--key", required=True, help="our node secret, 32 bytes hex")
    parser.add_argument("--node-id", help="the node to connect to (connect mode)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a silent peer after this")
    args = parser.parse_args()
    socket.setdefaulttimeout(args.timeout)
    key = PrivateKey(bytes.fromhex(args.key))
    if args.mode == "listen":
        server = LightningServerSocket(key)
        server.bind((args.host, args.port))
        server.listen(1)
        emit("listening", port=server.getsockname()[1], node_id=key.public_key().serializeCompressed().hex())
        conn, address = server.accept()
        emit("accepted", peer=conn.remote_pubkey.serializeCompressed().hex(), address=list(address))
        server.close()
    else:
        conn = connect(key, PublicKey(bytes.fromhex(args.node_id)), args.host, args.port)
        emit("connected")
    try:
        return serve(conn)
    finally:
        conn.connection.close()


if __name__ == "__main__":
    sys.exit(main())
