import sys

try:
    from app.entrypoints.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: nothing has started
    try:
        from app.entrypoints.logs import LogSettings, failure_lines, json_asked

        said = failure_lines(LogSettings(format="json" if json_asked(sys.argv[1:]) else "text"), ["interrupted"])
    except KeyboardInterrupt:  # again
        said = "notes-api: error: interrupted\n"
    sys.stderr.write(said)
    raise SystemExit(130) from None

raise SystemExit(main())
