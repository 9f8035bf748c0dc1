"""The agent tools: a local MCP server (stdio) that opencode starts itself (``opencode-backup mcp``).

    protocol.py  JSON-RPC 2.0 framing and messages (standard library only)
    server.py    the MCP session: initialize, ping, tools/list, tools/call, progress, cancellation
    tools.py     the five tools' names, schemas and argument checks; loads the engine on the first call
    actions.py   what status, sync and restore do, through the engine (imported only when a tool is called)
    finding.py   what search, show and restore at a time do (likewise)
    wording.py   the plain text a tool answers, for the model and the person reading along

opencode waits for this server before its first answer, so only ``actions`` and ``finding`` (and
``wording``, which only they import) may import the engine (app.backup, app.service, app.opencode,
app.transfer, app.wiring): start-up must stay well under 150 ms. ``bench/bench_mcp_startup.py`` measures it;
``tests/test_mcp_protocol.py`` checks the imports.
"""
