#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/<target>/seed-*: real protocol bytes and
documents for the targets that read raw bytes (the structured targets' seeds come from
the fuzzer's own runs). Run from anywhere; it overwrites only seed-* files."""

import gzip
import io
import json
import pathlib
import re
import struct
import tarfile
import zlib

ROOT = pathlib.Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"


def dictionary():
    text = (ROOT.parent / "crates/streaming/src/spdy/dictionary.rs").read_text()
    body = text.split('b"', 1)[1].rsplit('";', 1)[0]
    body = re.sub(r"\\\n\s*", "", body)
    return body.encode("latin-1").decode("unicode_escape").encode("latin-1")


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{name}").write_bytes(data)


# --- SPDY frames ---------------------------------------------------------------------
def spdy_headers(compressor, pairs):
    raw = struct.pack(">I", len(pairs))
    for name, value in pairs:
        raw += struct.pack(">I", len(name)) + name + struct.pack(">I", len(value)) + value
    return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)


def control(frame_type, flags, payload):
    return struct.pack(">HHI", 0x8003, frame_type, flags << 24 | len(payload)) + payload


def data(stream_id, flags, payload):
    return struct.pack(">II", stream_id, flags << 24 | len(payload)) + payload


def exec_session():
    c = zlib.compressobj(zdict=dictionary())
    out = b""
    for stream_id, kind in [(1, b"error"), (3, b"stdin"), (5, b"stdout"), (7, b"stderr"), (9, b"resize")]:
        block = spdy_headers(c, [(b"streamtype", kind), (b"requestid", b"0")])
        out += control(1, 0, struct.pack(">IIH", stream_id, 0, 0) + block)
    out += data(3, 0, b"echo hello\n") + data(3, 1, b"")
    out += data(9, 0, b'{"Width":80,"Height":24}')
    out += control(6, 0, struct.pack(">I", 1))
    out += control(4, 0, struct.pack(">III", 1, 7, 65536))
    out += control(9, 0, struct.pack(">II", 0, 1 << 20))
    out += control(3, 0, struct.pack(">II", 5, 5))
    out += control(7, 0, struct.pack(">II", 9, 0))
    return out


def port_forward_session():
    c = zlib.compressobj(zdict=dictionary())
    out = b""
    for stream_id, kind in [(1, b"error"), (3, b"data")]:
        block = spdy_headers(c, [(b"streamtype", kind), (b"port", b"8080"), (b"requestid", b"1")])
        out += control(1, 0, struct.pack(">IIH", stream_id, 0, 0) + block)
    out += data(3, 0, b"GET / HTTP/1.0\r\n\r\n")
    return out


write("spdy_frames", "exec", b"\x10" + exec_session())
write("spdy_frames", "portforward", b"\x03" + port_forward_session())
write("spdy_frames", "repeated-header", b"\x40" + control(
    2, 1, struct.pack(">I", 1) + spdy_headers(zlib.compressobj(zdict=dictionary()),
                                              [(b"x-stream-protocol-version", b"v4.channel.k8s.io\0v3.channel.k8s.io")])))

# --- HTTP/2 with a socket path as :authority (literal HPACK, no Huffman) ---------------
def hpack_literal(name, value):
    return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2_frame(frame_type, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([frame_type, flags]) + struct.pack(">I", stream) + payload


preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
block = b"".join(hpack_literal(n, v) for n, v in [
    (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/runtime.v1.RuntimeService/Version"),
    (b":authority", b"/run/containerd/containerd.sock"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
h2 = preface + h2_frame(4, 0, 0, b"") + h2_frame(1, 4, 1, block) + h2_frame(0, 1, 1, b"\0\0\0\0\0")
# Input::Bytes (variant 0 of 2: a tag below 2^31), no sizes (a 0 ends the list), the data as the rest.
write("authority", "grpc-socket-path", b"\0" * 5 + h2)
write("authority", "http1", b"\0" * 5 + b"GET / HTTP/1.1\r\nHost: /x.sock\r\n\r\n")

# --- Layers: Input::Blob (variant 0 of 2), compression 0 (detect), the blob as the rest ---
def tar_bytes(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in entries:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def info(name, kind=tarfile.REGTYPE, size=0, link="", mode=0o644, pax=None):
    i = tarfile.TarInfo(name)
    i.type, i.size, i.linkname, i.mode, i.mtime = kind, size, link, mode, 1700000000
    if pax:
        i.pax_headers = pax
    return i


layer = tar_bytes([
    (info("./", tarfile.DIRTYPE, mode=0o755), None),
    (info("etc/", tarfile.DIRTYPE, mode=0o755), None),
    (info("etc/passwd", size=5), b"root\n"),
    (info("bin/sh", tarfile.SYMTYPE, link="busybox"), None),
    (info("bin/busybox", size=2, mode=0o4755, pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}), b"#!"),
    (info("bin/ls", tarfile.LNKTYPE, link="bin/busybox"), None),
    (info("tmp/fifo", tarfile.FIFOTYPE), None),
    (info("var/.wh.cache"), None),
    (info("opt/.wh..wh..opq"), None),
])
escape = tar_bytes([
    (info("link", tarfile.SYMTYPE, link="../canary"), None),
    (info("link/file", size=3), b"bad"),
    (info("../canary/x", size=3), b"bad"),
    (info("hard", tarfile.LNKTYPE, link="../canary/file"), None),
])
write("layer_unpack", "layer-tar", b"\0\0\0\0\0" + layer)
write("layer_unpack", "layer-gzip", b"\0\0\0\0\0" + gzip.compress(layer, mtime=0))
write("layer_unpack", "escape", b"\0\0\0\0\0" + escape)

# --- Manifests: the first byte picks the media type ----------------------------------
D = "sha256:" + "1" * 64
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 7},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 32,
                        "annotations": {"a": "b"}, "urls": None}]}
index = {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 1,
     "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": D, "size": 1,
     "platform": {"architecture": "amd64", "os": "linux", "os.features": ["x"]}}]}
config = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "User": "1000:1000",
          "ExposedPorts": {"80/tcp": {}}, "Labels": {"k": "v"}, "StopSignal": "SIGTERM"},
          "rootfs": {"type": "layers", "diff_ids": [D]}, "history": [{"created_by": "x", "empty_layer": True}]}
write("image_manifest", "oci-manifest", b"\x00" + json.dumps(manifest).encode())
write("image_manifest", "index", b"\x01" + json.dumps(index).encode())
write("image_manifest", "config", b"\x05" + json.dumps(config).encode())
write("image_manifest", "schema1", b"\x05" + b'{"schemaVersion":1,"fsLayers":[]}')

for i, ref in enumerate(["busybox", "registry.k8s.io/pause:3.9", "localhost:5000/a/b_c__d-e:v1.0",
                         "[::1]:5000/x@" + D, "docker.io/library/nginx:1.25@" + D, "index.docker.io/x",
                         "UPPER/case", "a" * 64]):
    write("image_reference", f"ref{i}", ref.encode())

challenge = b'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull",scope="b", Basic realm="x"'
token = b'{"token":"abc","access_token":"def","expires_in":300}'
write("www_authenticate", "bearer", bytes([len(challenge)]) + challenge + token)
write("www_authenticate", "token68", bytes([18]) + b"Negotiate abc==, x" + b'{"access_token":"t"}')

conflist = {"cniVersion": "1.0.0", "name": "pods", "disableCheck": "false", "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.18.0.0/24"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": True}}]}
write("cni_config", "conflist", json.dumps(conflist).encode())
write("cni_config", "conf", json.dumps({"cniVersion": "0.4.0", "name": "one", "type": "bridge"}).encode())
write("cni_config", "cache-entry", json.dumps({
    "kind": "runtime-core/cni-cache/v1", "networkName": "pods", "containerId": "abc", "ifName": "eth0",
    "netns": "/var/run/netns/x", "cniArgs": "IgnoreUnknown=1", "capabilityArgs": {}, "config": conflist,
    "result": {"cniVersion": "1.0.0", "ips": []}}).encode())

result = {"cniVersion": "1.0.0", "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
          "ips": [{"address": "fd00::2/64", "interface": 1}, {"address": "198.18.0.2/24", "gateway": "198.18.0.1", "interface": 1}]}
write("cni_result", "result-1.0", b"\x00" + json.dumps(result).encode())
write("cni_result", "result-0.2", b"\x00" + b'{"cniVersion":"0.2.0","ip4":{"ip":"198.18.0.3/24"},"ip6":{"ip":"fd00::3/64"}}')
write("cni_result", "error", b"\x05oops!" + b'{"code":7,"msg":"failed","details":"no address"}')

for i, path in enumerate(["/healthz", "/pods", "/stats/summary", "/metrics",
                          "/exec/default/web/0f4c-1c3e/app?command=sh&stdin=1",
                          "/containerLogs/kube-system/dns.1/c?tailLines=10&timestamps=true&limitBytes=100&sinceSeconds=5",
                          "/portForward/ns/pod?port=8080", "/containerLogs/default/..%2f..%2fetc/passwd",
                          "/attach/a/b/c?sinceTime=2024-05-01T12:00:00Z&follow"]):
    write("kubelet_routes", f"path{i}", path.encode())
