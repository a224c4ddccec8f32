"""A WebSocket client by hand, for peers that misbehave on purpose: one that never reads,
never answers pings, or sends frames a library would refuse to send."""

from __future__ import annotations

import base64
import os
import socket
import struct


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawWebSocket:
    def __init__(self, port: int, path: str = "/ws", rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("handshake refused")
            response += chunk
        assert b" 101 " in response.split(b"\r\n", 1)[0], response

    def send_text(self, text: str) -> None:
        self.sock.sendall(_frame(text.encode()))

    def is_closed_by_peer(self, timeout: float) -> bool:
        """Drain what arrives; True once the server has closed or reset the socket."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(1 << 20):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def read_until_closed(self, timeout: float) -> bytes:
        """Everything the server sends until it closes the connection."""
        self.sock.settimeout(timeout)
        data = bytearray()
        try:
            while chunk := self.sock.recv(1 << 20):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return bytes(data)

    def close(self) -> None:
        self.sock.close()
