"""What every pitill page answers with and checks, the mirror's and the host's dashboard's: one
home for the loopback Host rule (DNS rebinding), the security headers with their strict CSP, and
the same-origin test for anything that changes state."""

from __future__ import annotations

import ipaddress


def security_headers(form_action: str = "'none'") -> dict[str, str]:
    """Headers for every answer; `form_action` is where the page's forms may post ('self' for
    the dashboard's, 'none' for the mirror that has no forms). A page with forms says
    same-origin as its referrer policy: under no-referrer Chromium posts forms with
    `Origin: null`, which the same-origin check must refuse."""
    return {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            f"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            f"form-action {form_action}"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer" if form_action == "'none'" else "same-origin",
        "Cache-Control": "no-store",
    }


def loopback_host(host: str) -> bool:
    """Whether a request's Host header names a loopback address (localhost, 127/8, ::1)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def same_origin(origin: str | None, host: str) -> bool:
    """A browser's Origin header against the Host it asked: absent (not a cross-site browser
    request) or the same host and port."""
    return origin is None or origin.split("://", 1)[-1] == host
