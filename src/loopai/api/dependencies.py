"""What routes get injected, named explicitly (Litestar 3 drops inferred dependencies)."""

from __future__ import annotations

from litestar.di import NamedDependency

from loopai.core.runtime import Domain
from loopai.hub.hub import Hub

HubDep = NamedDependency[Hub]
DomainDep = NamedDependency[Domain]
