"""A LangChain agent whose file tools are rooted in a scopefs view.

LangChain's FileManagementToolkit gets `root_dir` set to the view (SCOPEFS_VIEW, which
`scopefs run` sets, or --root). A scripted chat model (LangChain's GenericFakeChatModel: no
model is called, no key is needed) asks for the tool calls a coding agent would make; this
loop runs them the way an agent executor does and feeds the results back.

What it shows:
  - list_directory never lists .env; read_file on .env reports an error, exactly as for a
    file that does not exist;
  - write_file under src/ succeeds (with an overlay, the write lands there, not in the
    project); write_file on README.md is refused (not writable under the policy).

Exit status 0 when every expectation holds, 1 otherwise. --transcript FILE writes the tool
calls and results as JSON.
"""

import argparse
import json
import os
import sys
import warnings

# langchain-community announces its sunset on import; the toolkit works at the pinned version.
warnings.filterwarnings("ignore", category=DeprecationWarning)

from langchain_community.agent_toolkits import FileManagementToolkit  # noqa: E402
from langchain_core.language_models.fake_chat_models import (  # noqa: E402
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402

NOTE_PATH = "src/agent_notes.md"
NOTE_TEXT = "# Notes from the agent\n\nThe greeting is built in src/lib.rs.\n"


def tool_call(call_id, name, **args):
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def scripted_model():
    """The turns a coding agent would take, as a fake chat model replays them."""
    turns = [
        AIMessage(content="", tool_calls=[tool_call("1", "list_directory", dir_path=".")]),
        AIMessage(
            content="",
            tool_calls=[
                tool_call("2", "read_file", file_path="src/lib.rs"),
                tool_call("3", "read_file", file_path=".env"),
                tool_call("4", "read_file", file_path="config/.env.production"),
            ],
        ),
        AIMessage(
            content="",
            tool_calls=[
                tool_call("5", "write_file", file_path=NOTE_PATH, text=NOTE_TEXT),
                tool_call("6", "write_file", file_path="README.md", text="overwritten\n"),
            ],
        ),
        AIMessage(content="Done: notes written to " + NOTE_PATH),
    ]
    return GenericFakeChatModel(messages=iter(turns))


def run_agent(root_dir):
    toolkit = FileManagementToolkit(
        root_dir=root_dir,
        selected_tools=["list_directory", "read_file", "write_file"],
    )
    tools = {tool.name: tool for tool in toolkit.get_tools()}
    model = scripted_model()
    history = [HumanMessage(content="Read the project and leave notes in src/.")]
    transcript = []
    while True:
        reply = model.invoke(history)
        history.append(reply)
        if not reply.tool_calls:
            return transcript, reply.content
        for call in reply.tool_calls:
            result = tools[call["name"]].invoke(call)
            history.append(result)
            transcript.append(
                {"tool": call["name"], "args": call["args"], "result": result.content}
            )


def expectations(transcript):
    """(description, holds) for what the view must have done to each call."""
    by_id = {str(i + 1): step for i, step in enumerate(transcript)}
    listing = by_id["1"]["result"].splitlines()
    return [
        ("list_directory shows README.md", "README.md" in listing),
        ("list_directory hides .env", ".env" not in listing),
        ("list_directory hides the private key directory .ssh", ".ssh" not in listing),
        ("read_file reads src/lib.rs", "fn greeting" in by_id["2"]["result"]),
        (
            "read_file on .env reports an error",
            by_id["3"]["result"].startswith("Error: no such file or directory"),
        ),
        (
            "read_file on config/.env.production reports an error",
            by_id["4"]["result"].startswith("Error: no such file or directory"),
        ),
        (
            "write_file under src/ succeeds",
            by_id["5"]["result"].startswith("File written successfully"),
        ),
        (
            "write_file on README.md is refused",
            by_id["6"]["result"].startswith("Error")
            and "Permission denied" in by_id["6"]["result"],
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("SCOPEFS_VIEW"),
                        help="the view (default: $SCOPEFS_VIEW, set by scopefs run)")
    parser.add_argument("--transcript", help="write the tool calls and results here (JSON)")
    args = parser.parse_args()
    if not args.root:
        parser.error("no view: pass --root or run under `scopefs run`")

    transcript, answer = run_agent(args.root)
    for step in transcript:
        print(f"{step['tool']}({json.dumps(step['args'])}) -> {step['result']!r}")
    print(f"agent: {answer}")
    if args.transcript:
        with open(args.transcript, "w", encoding="utf-8") as out:
            json.dump(transcript, out, indent=2)

    failed = 0
    for what, holds in expectations(transcript):
        print(("ok - " if holds else "not ok - ") + what)
        failed |= not holds
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
