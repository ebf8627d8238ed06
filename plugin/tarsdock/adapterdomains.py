"""What a Tars runtime makes of each domain under <tars><application><server>: an adapter.

TarsCpp's Application::bindAdapter (servant/libservant/Application.cpp, TarsCloud/TarsCpp
eb7c7e1, TarsCpp 3; the same at 0350c6c, TarsCpp 2.0) lists the sub-domains of
/tars/application/server with TC_Config::getDomainVector and binds each as an adapter, whatever
its name. Of each it reads:
- `servant` with TC_Config::get, which gives "" for a missing key; Application::
  checkServantNameValid then exits the process unless the servant is longer than, and starts
  with, `<app>.<server>.` (server<app>, "UNKNOWN" when empty, and server<server>, the binary's
  name when empty: Application::initializeServer);
- `endpoint` and `allow` with TC_Config::operator[], which throws TC_ConfigNoParam_Exception for
  a missing key (TC_ConfigDomain::getParamValue, util/src/tc_config.cpp); Application::main
  catches it and exits. An empty `allow` allows every address; an empty `endpoint` does not
  parse (resolve._listen says so);
- `maxconns`, `queuecap`, `queuetimeout`, `protocol`, `order`, `deny` with TC_Config::get and a
  default (128, 1024, 10000 ms, tars, allow,deny, none): a domain without them starts;
- `threads` with a default that changed: "1" at eb7c7e1, "0" at 0350c6c, where
  BindAdapter::setHandle then starts no handler thread (unless server<mergenetimp> merges them
  into the network threads), so the adapter accepts connections and answers nothing.

The domains the manifest's adapters make have every key (resolve.adapter_config), and a
template or profile domain of the same name is merged into one of them: only a domain no
manifest adapter fills can lack one. TarsJava reads the same domains its own way
(ServantAdapterConfig, core/src/main/java/com/qq/tars/server/config/ServantAdapterConfig.java:
`endpoint` and `servant` with no default, neither `allow` nor a servant check): for a service of
another runtime a domain without `endpoint` or `servant` is a warning that it is not checked.
"""

from __future__ import annotations

from tarsdock.errors import InputError, InputWarning
from tarsdock.keys import CONTAINER_DOMAINS
from tarsdock.listeners import Listening
from tarsdock.tcconfig import Config

# read with TC_Config::operator[]: a missing one throws, and the service exits at start
THROWING = ("endpoint", "allow")
# read with no default by TarsJava's ServantAdapterConfig too: what another runtime may lack
NO_DEFAULT = ("endpoint", "servant")


def servant_prefix(server: Config, binary: str) -> str:
    """What every servant of the service must start with (Application::bindAdapter's sPrefix):
    server<app> and server<server> as Application::initializeServer reads them, `binary` the
    name of the file it runs from."""
    app = server.params.get("app")
    name = server.params.get("server")
    return (f"{app.value if app is not None and app.value else 'UNKNOWN'}."
            f"{name.value if name is not None and name.value else binary}.")


def check_domain(domain: Config, prefix: str, runtime: str, found: Listening) -> None:
    """Add to `found` what TarsCpp makes of the adapter `domain` at start, for a tars_cpp
    service (`prefix`: servant_prefix): errors where it exits, a warning where it starts and
    answers nothing; for another runtime a warning for each key it reads with no default."""
    if runtime != "tars_cpp":
        _not_checked(domain, runtime, found)
        return
    params = domain.params
    servant = params.get("servant")
    if servant is None:
        # a <volumes> or <ports> put in <server> instead of <container> (checks warns of it)
        hint = ("; did you mean <tars><application><container>?"
                if domain.name.lower() in CONTAINER_DOMAINS else "")
        found.errors.append(InputError(domain.origin, (
            f"{_adapter(domain)} has no servant: the service exits at start (Application::"
            f"checkServantNameValid wants one that starts with '{prefix}'){hint}"), "servant"))
    elif len(servant.value) <= len(prefix) or not servant.value.startswith(prefix):
        # checkServantNameValid wants the prefix and more: 'App.Server.' alone starts with it
        what = (f"names no object after '{prefix}'" if servant.value.startswith(prefix)
                else f"does not start with '{prefix}'")
        found.errors.append(InputError(servant.origin, (
            f"servant '{servant.value}' of <{domain.name}> {what}: "
            "TarsCpp exits at start (Application::checkServantNameValid)"), "servant"))
    for key in THROWING:
        if key not in params:
            hint = " (an empty allow allows every address)" if key == "allow" else ""
            found.errors.append(InputError(domain.origin, (
                f"{_adapter(domain)} has no {key}: the service exits at start (Application::"
                f"bindAdapter reads it with TC_Config::operator[], which throws){hint}"), key))
    if "threads" not in params:
        found.notes.append(InputWarning(domain.origin, (
            f"{_adapter(domain)} has no threads: TarsCpp 3 takes 1 handler thread, TarsCpp 2.0 "
            "none (Application::bindAdapter's default), and the adapter then answers no request; "
            "write threads"), "threads"))


def _adapter(domain: Config) -> str:
    """How a message names a domain: TarsCpp takes it for an adapter, which its author may not
    know."""
    return f"<{domain.name}> under <server> is an adapter to TarsCpp and"


def _not_checked(domain: Config, runtime: str, found: Listening) -> None:
    for key in NO_DEFAULT:
        if key not in domain.params:
            found.notes.append(InputWarning(domain.origin, (
                f"<{domain.name}> under <server> has no {key}: not checked for a {runtime} "
                f"service: tarsdock reads adapter domains as TarsCpp does (which exits without "
                f"one), and {runtime}'s runtime reads them its own way"), key))
