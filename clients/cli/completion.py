"""Shell completion for bash, zsh and fish, generated from the command's own argparse tree.

Generated rather than hand-written so that every command and flag, including those other
packages add through the ``serverprep.cli`` entry point, is completed as it is defined; and
without argcomplete, because the client distribution depends on grpcio and protobuf only.
Server names come from the service at completion time (``serverprep servers list --names``).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

SERVER_NAMES = "serverprep servers list --names --timeout 2 2>/dev/null"
FILE_METAVARS = {"FILE", "PATH", "DIR"}


@dataclass
class Option:
    flags: list[str]
    help: str
    takes_value: bool
    choices: list[str]
    kind: str  # "file", "server" or ""


@dataclass
class Command:
    path: str
    help: str = ""
    options: list[Option] = field(default_factory=list)
    subcommands: dict[str, str] = field(default_factory=dict)
    positional: str = ""  # "server", or the words a positional argument takes, space-separated

    def valued(self) -> list[str]:
        return [f for o in self.options if o.takes_value for f in o.flags]

    def flags(self) -> list[str]:
        return [f for o in self.options for f in o.flags]


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        try:
            text = text % {**vars(action), "prog": "serverprep"}
        except (KeyError, TypeError, ValueError):
            pass
    return " ".join(text.split())


def _kind(action: argparse.Action) -> str:
    marked = getattr(action, "completion", "")
    if marked:
        return str(marked)
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if metavar in FILE_METAVARS or action.dest.endswith("_file") or action.dest in ("tls_ca", "tls_cert", "tls_key"):
        return "file"
    return ""


def walk(parser: argparse.ArgumentParser, path: str = "", help_text: str = "") -> dict[str, Command]:
    """Every command reachable from ``parser``, by its path ("", "servers", "servers add", ...)."""
    command = Command(path, help_text)
    found = {path: command}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                if name not in helps:
                    continue  # an alias, or a command without help: not offered
                command.subcommands[name] = " ".join(helps[name].split())
                found.update(walk(sub, f"{path} {name}".strip(), helps[name]))
        elif action.option_strings:
            if action.help == argparse.SUPPRESS:
                continue
            command.options.append(Option(
                list(action.option_strings), _help(action), action.nargs != 0,
                [str(c) for c in action.choices] if action.choices else [], _kind(action),
            ))
        elif not command.positional:
            kind = _kind(action)
            command.positional = kind or (" ".join(str(c) for c in action.choices) if action.choices else "")
    return found


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    commands = walk(parser)
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](commands)


# -- bash and zsh: the same spec functions, POSIX-like shell both understand --------


def _spec_function(commands: dict[str, Command]) -> str:
    lines = ["_serverprep_spec() {", '    sp_subs="" sp_valued="" sp_flags="" sp_files="" sp_servers="" sp_pos=""',
             '    case "$1" in']
    for path, c in commands.items():
        values = {
            "sp_subs": " ".join(c.subcommands), "sp_valued": " ".join(c.valued()), "sp_flags": " ".join(c.flags()),
            "sp_files": " ".join(f for o in c.options if o.kind == "file" for f in o.flags),
            "sp_servers": " ".join(f for o in c.options if o.kind == "server" for f in o.flags), "sp_pos": c.positional,
        }
        assign = " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items() if v)
        lines.append(f"    {shlex.quote(path) if path else _EMPTY})  {assign or ':'} ;;")
    lines += ["    esac", "}", "", "_serverprep_choices() {", '    case "$1|$2" in']
    for path, c in commands.items():
        for o in c.options:
            if o.choices:
                patterns = "|".join(shlex.quote(f"{path}|{f}") for f in o.flags)
                lines.append(f"    {patterns})  echo {shlex.quote(' '.join(o.choices))} ;;")
    lines += ["    esac", "}"]
    return "\n".join(lines)


_EMPTY = "''"

_WALK = """    local sp_path="" sp_skip=0 sp_npos=0 sp_i sp_w
    local sp_subs sp_valued sp_flags sp_files sp_servers sp_pos
    _serverprep_spec ""
    for ((sp_i = {first}; sp_i < {current}; sp_i++)); do
        sp_w="${{words[sp_i]}}"
        if ((sp_skip)); then sp_skip=0; continue; fi
        case "$sp_w" in
            --*=*) ;;
            -*) [[ " $sp_valued " == *" $sp_w "* ]] && sp_skip=1 ;;
            *) if [[ " $sp_subs " == *" $sp_w "* ]]; then
                   sp_path="${{sp_path:+$sp_path }}$sp_w"; sp_npos=0; _serverprep_spec "$sp_path"
               else
                   sp_npos=$((sp_npos + 1))
               fi ;;
        esac
    done"""


def bash(commands: dict[str, Command]) -> str:
    return f"""# bash completion for serverprep, generated by `serverprep completion bash`
{_spec_function(commands)}

_serverprep_servers() {{ {SERVER_NAMES}; }}

_serverprep() {{
    local words=("${{COMP_WORDS[@]}}") cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
{_WALK.format(first=1, current="COMP_CWORD")}
    COMPREPLY=()
    if [[ " $sp_valued " == *" $prev "* ]]; then
        local choices
        choices="$(_serverprep_choices "$sp_path" "$prev")"
        if [[ -n "$choices" ]]; then
            COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        elif [[ " $sp_files " == *" $prev "* ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
        elif [[ " $sp_servers " == *" $prev "* ]]; then
            COMPREPLY=($(compgen -W "$(_serverprep_servers)" -- "$cur"))
        fi
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$sp_flags" -- "$cur"))
        return 0
    fi
    local candidates="$sp_subs"
    if ((sp_npos == 0)); then
        case "$sp_pos" in
            "") ;;
            server) candidates="$candidates $(_serverprep_servers)" ;;
            file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
            *) candidates="$candidates $sp_pos" ;;
        esac
    fi
    COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}}
complete -F _serverprep serverprep
"""


def _describe_function(name: str, commands: dict[str, Command], pairs: str) -> str:
    lines = [f"{name}() {{", '    case "$1" in']
    for path, c in commands.items():
        items = c.subcommands.items() if pairs == "commands" else [(f, o.help) for o in c.options for f in o.flags]
        text = "\n".join(f"{n.replace(':', chr(92) + ':')}:{h}" for n, h in items)
        if text:
            lines.append(f"    {shlex.quote(path) if path else _EMPTY})  print -r -- {shlex.quote(text)} ;;")
    lines += ["    esac", "}"]
    return "\n".join(lines)


def zsh(commands: dict[str, Command]) -> str:
    return f"""#compdef serverprep
# zsh completion for serverprep, generated by `serverprep completion zsh`
{_spec_function(commands)}

{_describe_function("_serverprep_command_help", commands, "commands")}

{_describe_function("_serverprep_option_help", commands, "options")}

_serverprep_servers() {{ compadd -- ${{(f)"$({SERVER_NAMES})"}}; }}

_serverprep() {{
{_WALK.format(first=2, current="CURRENT")}
    local cur="${{words[CURRENT]}}" prev="${{words[CURRENT-1]}}"
    if [[ " $sp_valued " == *" $prev "* ]]; then
        local choices
        choices="$(_serverprep_choices "$sp_path" "$prev")"
        if [[ -n "$choices" ]]; then
            compadd -- ${{=choices}}
        elif [[ " $sp_files " == *" $prev "* ]]; then
            _files
        elif [[ " $sp_servers " == *" $prev "* ]]; then
            _serverprep_servers
        fi
        return
    fi
    if [[ "$cur" == -* ]]; then
        local -a described
        described=(${{(f)"$(_serverprep_option_help "$sp_path")"}})
        _describe -t options option described
        return
    fi
    local -a described
    described=(${{(f)"$(_serverprep_command_help "$sp_path")"}})
    (( ${{#described}} )) && _describe -t commands command described
    if ((sp_npos == 0)); then
        case "$sp_pos" in
            "") ;;
            server) _serverprep_servers ;;
            file) _files ;;
            *) compadd -- ${{=sp_pos}} ;;
        esac
    fi
}}

if [[ "${{funcstack[1]}}" == "_serverprep" ]]; then
    _serverprep "$@"
else
    compdef _serverprep serverprep
fi
"""


# -- fish ----------------------------------------------------------------------


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(commands: dict[str, Command]) -> str:
    lists = []
    for name, pick in (("subs", lambda c: list(c.subcommands)), ("valued", lambda c: c.valued())):
        lists.append(f"function __serverprep_{name}\n    switch $argv[1]")
        for path, c in commands.items():
            words = pick(c)
            if words:
                lists.append(f"        case {_fish_quote(path)}\n            printf '%s\\n' {' '.join(_fish_quote(w) for w in words)}")
        lists.append("    end\nend")
    out = [
        "# fish completion for serverprep, generated by `serverprep completion fish`",
        *lists,
        """function __serverprep_path
    set -l sp_path ''
    set -l skip 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '--*=*'
            case '-*'
                if contains -- $w (__serverprep_valued "$sp_path")
                    set skip 1
                end
            case '*'
                if contains -- $w (__serverprep_subs "$sp_path")
                    set sp_path (string trim -- "$sp_path $w")
                end
        end
    end
    echo $sp_path
end""",
        """function __serverprep_is
    set -l p (__serverprep_path)
    test "$p" = "$argv[1]"
end""",
        "complete -c serverprep -f",
    ]
    for path, c in commands.items():
        when = f"-n {_fish_quote('__serverprep_is ' + _fish_quote(path))}"
        for name, text in c.subcommands.items():
            out.append(f"complete -c serverprep {when} -a {_fish_quote(name)} -d {_fish_quote(text)}")
        if c.positional == "server":
            out.append(f"complete -c serverprep {when} -a {_fish_quote('(' + SERVER_NAMES + ')')}")
        elif c.positional == "file":
            out.append(f"complete -c serverprep {when} -F")
        elif c.positional:
            out.append(f"complete -c serverprep {when} -a {_fish_quote(c.positional)}")
        for o in c.options:
            spec = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in o.flags)
            if o.choices:
                spec += f" -x -a {_fish_quote(' '.join(o.choices))}"
            elif o.kind == "file":
                spec += " -r -F"
            elif o.kind == "server":
                spec += f" -x -a {_fish_quote('(' + SERVER_NAMES + ')')}"
            elif o.takes_value:
                spec += " -x"
            out.append(f"complete -c serverprep {when} {spec} -d {_fish_quote(o.help)}")
    return "\n".join(out) + "\n"
