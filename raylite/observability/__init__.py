"""What raylite shows about a running cluster: task tables, filters, timelines, object
reports, store summaries and session retention. Pure logic where possible; the
readers in raylite.util.state and the CLI (raylite/cli/state_cmds.py) call in here."""
