"""What an agent should do next, for every reason the service gives: one line each, read by a model, not a person."""

from __future__ import annotations

REGISTER = ("servers are registered by a person with the CLI, never through MCP: "
            "`serverprep servers add NAME --host HOST --user USER --key-file FILE --accept-new-host-key`")
READ_LOGS = "read the failed step's output with get_preparation_logs(server, step=...)"

#: Every reason serverprep.clients.errors knows (a test checks that none is missing), and what to do about it.
HINTS: dict[str, str] = {
    # the request
    "INVALID_ARGUMENT": "fix the arguments named in violations and call again",
    "NOT_FOUND": "check the name with list_servers",
    "SERVER_NOT_FOUND": f"no server has this name: call list_servers for the registered names; {REGISTER}",
    "PREPARATION_NOT_FOUND": "this server has no such preparation: start one with prepare_server, or leave preparation_id "
                             "out to mean the latest",
    "SERVER_EXISTS": "a server with this name is already registered: use it, or ask a person to pick another name",
    "PREPARATION_ACTIVE": "a preparation of this server is already PENDING or RUNNING (metadata.preparation_id): wait for it "
                          "with get_preparation_status, or stop it with cancel_preparation, then try again",
    "NOT_RETRYABLE": "only a FAILED or CANCELLED preparation can be retried: check get_preparation_status (a SUCCEEDED one "
                     "needs nothing; a PENDING or RUNNING one is still going)",
    "NOT_CANCELLABLE": "only a PENDING or RUNNING preparation can be cancelled, and this one has already ended",
    "UNAUTHENTICATED": "this MCP server's token for the serverprep service is missing or wrong: a person must fix its "
                       "configuration (SERVERPREP_TOKEN or --token-file); calling again will not help",
    "STREAM_TOO_SLOW": "the log was read too slowly: call get_preparation_logs again with after_seq=metadata.resume_after_seq",
    "INTERNAL": "a bug in the serverprep service: report the message to a person; calling again may not help",
    # the service's availability
    "SERVICE_UNAVAILABLE": "the serverprep service cannot be reached (metadata.address): it may be down or restarting; "
                           "try again in a minute, then ask a person to check `serverprep health`",
    "SHUTTING_DOWN": "the serverprep service is restarting: try again in a few seconds",
    "STORAGE_ERROR": "the serverprep service cannot use its database: try again later, and tell a person if it persists",
    "DEADLINE_EXCEEDED": "the serverprep service did not answer in time: try again",
    # the server being prepared
    "UNSUPPORTED_OS": "no installed OS driver supports this server (the message names its OS and the installed drivers): "
                      "retrying will not help; use a supported system or ask a person to install a driver for it",
    "DRIVER_CONFLICT": "two OS drivers claim this server equally: a person must disable one on the service "
                       "(SERVERPREP_DISABLE_PLUGINS); retrying will not help until then",
    "DRIVER_ERROR": "an OS driver failed (see the message): report it to a person; retrying will fail the same way",
    "REMOTE_ERROR": "talking to the server failed: see the message; retry_preparation once the cause is fixed",
    "HOST_KEY_MISMATCH": "the server's SSH host key is not the pinned one (fingerprints in metadata): it may have been "
                         "reinstalled, or this may be an attack; do not retry: a person must verify the new key out of band "
                         "and re-pin it with `serverprep servers update NAME --host-key 'TYPE BASE64'`",
    "AUTH_FAILED": "the server refused the SSH login with the registered credentials: a person must fix them with "
                   "`serverprep servers update NAME --key-file FILE` (or --password-stdin), then retry_preparation",
    "CONNECT_FAILED": "the server's SSH port could not be reached: check that it is up and reachable from the serverprep "
                      "service, then retry_preparation",
    "CONNECTION_REFUSED": "nothing accepts SSH connections at the server's address and port: check that sshd runs and the "
                          "registered port is right, then retry_preparation",
    "CONNECT_TIMEOUT": "the server did not answer on its SSH port in time (down, or a firewall drops the packets): check it, "
                       "then retry_preparation",
    "HOST_UNKNOWN": "the server's host name does not resolve: a person must fix it with `serverprep servers update NAME "
                    "--host ADDRESS`, then retry_preparation",
    "HOST_UNREACHABLE": "there is no route to the server from the serverprep service: check the network, then "
                        "retry_preparation",
    "CONNECTION_LOST": "the SSH connection dropped during a step: retry_preparation resumes at that step",
    "SUDO_FAILED": "sudo refused to run a step: the SSH user needs sudo rights on the server (or register the server with "
                   "root); then retry_preparation",
    "SUDO_PASSWORD_REQUIRED": "sudo on the server wants a password: a person registers it with `serverprep servers update NAME "
                              "--sudo-password-stdin`, then retry_preparation",
    "SUDO_PASSWORD_WRONG": "sudo rejected the registered sudo password: a person fixes it with `serverprep servers update "
                           "NAME --sudo-password-stdin`, then retry_preparation",
    "SUDO_NEEDS_TTY": "sudoers on the server has 'requiretty' for this user: a person must lift it, then retry_preparation",
    "SUDO_NOT_ALLOWED": "the SSH user may not use sudo on the server: a person must grant it (or register root), then "
                        "retry_preparation",
    "SUDO_MISSING": "sudo is not installed on the server: install it (or register root), then retry_preparation",
    "FACTS_FAILED": "the server's facts (os-release, architecture) could not be read: read get_preparation_logs(server, "
                    "step='detect_os'), fix the cause, then retry_preparation",
    "STEP_FAILED": f"a step's command failed (the message names it and its exit code): {READ_LOGS}; if the cause is "
                   "temporary (network, a package lock) or fixed, retry_preparation resumes at that step",
    "STEP_TIMEOUT": f"a step ran past its time limit and was stopped: {READ_LOGS}; retry_preparation resumes at that step",
    "CANCELLED": "the preparation was cancelled: retry_preparation resumes it at the step that did not finish",
    "INTERRUPTED": "the serverprep service stopped while this preparation ran: retry_preparation resumes at the interrupted "
                   "step",
}

DEFAULT_HINT = "see the message; get_preparation_status and get_preparation_logs tell more"


def hint(reason: str) -> str:
    """What to do about ``reason`` (a general hint for one this client does not know)."""
    return HINTS.get(reason, DEFAULT_HINT)
