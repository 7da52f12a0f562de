"""A demo-like site on the module's local stack."""

from __future__ import annotations

import pytest
from support.dashboard_site import DemoSite, build_demo_site

from cloud.local.stack import LocalStack


@pytest.fixture(scope="module")
def demo_site(stack: LocalStack) -> DemoSite:
    return build_demo_site(stack)
