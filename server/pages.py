"""The browser UI: server-rendered pages (Jinja2) and the login form. No inline scripts."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from invoicing.accounts import sessions
from invoicing.accounts import store as accounts
from invoicing.accounts.devices import DEVICE_COOKIE_LIFETIME_SECONDS, DeviceCookies
from invoicing.jobs import store as jobs
from invoicing.kernel.errors import Forbidden, InvoicingError, NotFound, TooManyRequests, Unauthorized
from invoicing.kernel.principal import Principal
from server import state
from server.addresses import request_address
from server.auth import SESSION_COOKIE, authenticate, same_origin, session_token
from server.requests import path_uuid

MAX_FIELD_LENGTH = 320
#: "This browser has logged in as this user before" (invoicing/accounts/devices.py).
DEVICE_COOKIE = "invoicing_device"
#: Pages carry no inline script or style: everything comes from /static, sockets included.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def web_dir() -> Path:
    """`web/` beside the packages (a source checkout), else under the working directory."""
    for candidate in (Path(__file__).resolve().parents[1] / "web", Path.cwd() / "web"):
        if (candidate / "templates").is_dir():
            return candidate
    raise RuntimeError("The web folder (templates and static files) cannot be found.")


def templates() -> Jinja2Templates:
    # Autoescaping on: customer and order text is shown as text, never as markup.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(web_dir() / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return Jinja2Templates(env=environment)


async def principal_or_none(request: Request) -> Principal | None:
    if session_token(request) is None:
        return None
    try:
        return await authenticate(request, state.services(request).database)
    except InvoicingError:
        return None


def render_page(request: Request, name: str, status_code: int = 200, /, **context: object) -> Response:
    response = state.services(request).templates.TemplateResponse(
        request, name, context, status_code=status_code
    )
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def home(request: Request) -> Response:
    principal = await principal_or_none(request)
    return RedirectResponse("/orders" if principal else "/login", status_code=303)


async def login_page(request: Request) -> Response:
    if await principal_or_none(request):
        return RedirectResponse("/orders", status_code=303)
    return render_page(request, "login.html", error=None, email="")


async def login_submit(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    email = str(form.get("email", ""))[:MAX_FIELD_LENGTH]
    password = str(form.get("password", ""))[:MAX_FIELD_LENGTH]
    if not same_origin(request):
        return render_page(request, "login.html", 403, error="Please log in from this page.", email=email)
    services = state.services(request)
    try:
        session = await sessions.login(
            services.database,
            services.limiter,
            email,
            password,
            address=request_address(request, services.settings.trusted_proxies),
            device=_known_device(request, email),
            secret_key=services.settings.secret_key,
            user_agent=request.headers.get("user-agent", ""),
        )
    except TooManyRequests as refused:
        throttled = render_page(request, "login.html", 429, error=refused.message, email=email)
        throttled.headers["Retry-After"] = str(refused.retry_after)
        return throttled
    except Unauthorized as error:
        return render_page(request, "login.html", 401, error=error.message, email=email)
    response = RedirectResponse("/orders", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=sessions.SESSION_LIFETIME_SECONDS,
        httponly=True,
        samesite="lax",
        secure=_secure_cookie(request),
        path="/",
    )
    _remember_device(request, response, session.principal.email)
    return response


def _device_cookies(request: Request) -> DeviceCookies | None:
    """None without SECRET_KEY: then no browser is ever a known device."""
    secret_key = state.services(request).settings.secret_key
    return None if secret_key is None else DeviceCookies.from_secret(secret_key)


def _known_device(request: Request, email: str) -> str | None:
    """The nonce of the device cookie the browser sent, if it is valid for ``email``."""
    devices = _device_cookies(request)
    if devices is None:
        return None
    return devices.device(request.cookies.get(DEVICE_COOKIE), email, now=int(time.time()))


def _remember_device(request: Request, response: Response, email: str) -> None:
    """Make this browser a known device for ``email``, with a fresh cookie at each login. Sent
    to /login only: nothing else reads it, and it outlives logouts and sessions."""
    devices = _device_cookies(request)
    if devices is None:
        return
    response.set_cookie(
        DEVICE_COOKIE,
        devices.issue(email, now=int(time.time())),
        max_age=DEVICE_COOKIE_LIFETIME_SECONDS,
        httponly=True,
        samesite="lax",
        secure=_secure_cookie(request),
        path="/login",
    )


def _secure_cookie(request: Request) -> bool:
    """Behind a TLS-terminating proxy the app sees http: SESSION_COOKIE_SECURE=true then."""
    configured = state.services(request).settings.session_cookie_secure
    return configured == "true" or (configured == "auto" and request.url.scheme == "https")


async def logout(request: Request) -> Response:
    """End the session on the server whatever the Origin: logging out only takes rights away, so
    a cross-site or Origin-less request gains an attacker nothing, while refusing it would leave
    a session alive that the user believes ended (issue 12: the cookie went, the session stayed)."""
    token = session_token(request)
    if token is not None:
        services = state.services(request)
        await sessions.logout(services.database, token, secret_key=services.settings.secret_key)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def app_page(request: Request) -> Response:
    """Orders and jobs pages: a shell the scripts fill from the API and WebSockets."""
    principal = await principal_or_none(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    page = request.url.path.strip("/") or "orders"
    return render_page(request, f"{page}.html", page=page, **await account_context(request, principal))


async def job_page(request: Request) -> Response:
    """One job: its facts rendered here, then kept live and filled in by /static/job-page.js.
    Another organization's job and a malformed id get the same 404 page as a missing one."""
    principal = await principal_or_none(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    context = {"page": "jobs", **await account_context(request, principal)}
    try:
        job_id = path_uuid(request, "job_id", NotFound.job)
        async with state.services(request).database.scoped(principal.organization_id) as connection:
            job = await jobs.get_job(connection, principal.organization_id, job_id)
    except NotFound:
        return render_page(request, "not_found.html", 404, what="job", **context)
    return render_page(request, "job.html", job=job.to_json(), **context)


async def account_context(request: Request, principal: Principal) -> dict[str, object]:
    """What the page header shows: who, in which organization, and which others they can pick."""
    database = state.services(request).database
    async with database.scoped(principal.organization_id) as connection:
        organization = await accounts.organization_name(connection, principal.organization_id)
    choices = await sessions.memberships(database, principal)
    return {"principal": principal, "organization": organization, "memberships": choices}


async def choose_organization(request: Request) -> Response:
    """Act in another of the user's organizations (a form in the header)."""
    token = session_token(request)
    form = await request.form(max_files=0, max_fields=5)
    if token is None or not same_origin(request):
        return RedirectResponse("/login", status_code=303)
    try:
        organization_id = UUID(str(form.get("organization_id", "")))
        services = state.services(request)
        await sessions.switch_organization(
            services.database, token, organization_id, secret_key=services.settings.secret_key
        )
    except (ValueError, Forbidden):
        return RedirectResponse("/orders?organization=refused", status_code=303)
    return RedirectResponse("/orders", status_code=303)


def routes() -> list[Route | Mount]:
    return [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/organization", choose_organization, methods=["POST"]),
        Route("/orders", app_page),
        Route("/jobs", app_page),
        Route("/jobs/{job_id}", job_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(web_dir() / "static")), name="static"),
    ]
