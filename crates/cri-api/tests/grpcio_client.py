"""Calls CRI Version over a unix socket with Python's grpcio, as a real client would.

Usage: grpcio_client.py SOCKET_PATH METHOD_PATH [AUTHORITY]

With AUTHORITY, the channel sends it as the HTTP/2 :authority (grpcio's
grpc.default_authority option); without it, grpcio picks its own default.
Prints the runtime_name of the VersionResponse, or the gRPC status on failure.
"""

import sys

import grpc


def encode_version_request(version: str) -> bytes:
    """VersionRequest { string version = 1; } on the wire (short strings only)."""
    data = version.encode()
    return b"\x0a" + bytes([len(data)]) + data


def decode_string_field(message: bytes, wanted: int) -> str:
    """Returns the string field numbered `wanted` of a flat protobuf message."""
    i = 0
    while i < len(message):
        key = message[i]
        i += 1
        number, wire_type = key >> 3, key & 7
        if wire_type != 2:
            raise ValueError(f"unexpected wire type {wire_type}")
        length, shift = 0, 0
        while True:
            byte = message[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        value = message[i : i + length]
        i += length
        if number == wanted:
            return value.decode()
    return ""


def main() -> int:
    socket_path, method = sys.argv[1], sys.argv[2]
    options = []
    if len(sys.argv) > 3:
        options.append(("grpc.default_authority", sys.argv[3]))
    with grpc.insecure_channel(f"unix:{socket_path}", options=options) as channel:
        call = channel.unary_unary(method)
        try:
            reply = call(encode_version_request("v1"), timeout=10)
        except grpc.RpcError as error:
            print(f"error {error.code().name}: {error.details()}")
            return 1
    print(decode_string_field(reply, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
