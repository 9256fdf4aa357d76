"""Every `python <script>.py ...` command in the docs, in the scripts' usage lines and in the hints of the
package's messages parses with that script's own flags, so none can drift from the scripts unnoticed."""
import contextlib
import io
import re
import shlex

import pytest

from tests.conftest import ROOT, load_script

DOCS = ["README.md", "docs/experiments.md", "data/README.md", "train_shipped.sh"] + sorted(
    str(p.relative_to(ROOT)) for p in [*ROOT.glob("*.py"), *ROOT.glob("lprnet/*.py")])
# a command runs to the end of its line, a closing backtick, a pipe, `&&`, `;` or a comment
COMMAND = re.compile(r"python ([\w/]+\.py)((?:[^`|&;#\n]|&(?!&))*)")


# train_shipped.sh's `stage N FIRST LAST LR FOLDERS [TRAIN.PY OPTIONS]` lines run train.py through a shell function
STAGE = re.compile(r"^\s*stage (\S+) (\S+) (\S+) (\S+) (\S+)((?:[^#\n])*)", re.M)


def documented_commands():
    found = []
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", (ROOT / doc).read_text(encoding="utf-8"))  # join continued lines
        for script, args in COMMAND.findall(text):
            if (ROOT / script).is_file() and '"$@"' not in args:  # not a shell function's template
                found.append((doc, script, args.strip()))
        for _, first, last, lr, _, options in STAGE.findall(text):
            found.append((doc, "train.py", f"--resume_epoch {first} --max_epoch {last} --lr {lr} {options.strip()}"))
    return found


def shell_words(args):
    """The words a shell passes, with unexpanded variables: a `$var` standing alone (a whole option, as `$extra`
    in a loop) is dropped; one after an option is its value, unknown here, so 1 stands in for it (a number or a
    name alike). `$((...))` arithmetic is one word."""
    words = shlex.split(re.sub(r"\$\(\([^()]*\)\)", "$((arithmetic))", args))
    return ["1" if w.startswith("$") else w for i, w in enumerate(words)
            if not (w.startswith("$") and (i == 0 or not words[i - 1].startswith("-")))]


COMMANDS = documented_commands()
SCRIPTS = {script: load_script(script) for script in sorted({script for _, script, _ in COMMANDS})}


def test_the_docs_show_every_stage_script():
    shown = {script for _, script, _ in COMMANDS}
    assert {"cut_ccpd.py", "train.py", "test.py", "LPRNet_ORT_infer.py", "LPRNet_migraphx_infer.py",
            "gen_plates.py", "bench_framing.py", "bench_conditions.py", "bench_infer.py", "bench_train.py"} <= shown


@pytest.mark.parametrize("doc,script,args", COMMANDS, ids=[f"{d}: {s} {a}"[:90] for d, s, a in COMMANDS])
def test_documented_command_parses(doc, script, args):
    words = shell_words(args)
    if "-h" in words or "--help" in words:
        return
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            SCRIPTS[script].parse_opt(words)
    except SystemExit:
        pytest.fail(f"{doc}: python {script} {args}\n{stderr.getvalue().strip().splitlines()[-1]}")
