"""Small helpers shared by tests (multi-process set-up, the documentation pages, a protocol registered for a test)."""
import os
import socket
from contextlib import contextmanager
from pathlib import Path

import torch.distributed as dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_gloo(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)


ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")))  # every page a user copies commands from


@contextmanager
def registered(protocol):
    """``protocol`` registered (`augshift.protocols.register_protocol`) inside the block, removed after it."""
    from augshift.protocols import PROTOCOLS, register_protocol

    register_protocol(protocol)
    try:
        yield protocol
    finally:
        del PROTOCOLS[protocol.name]
