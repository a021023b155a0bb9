import sys

try:
    from app.entrypoints.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: nothing has started
    sys.stderr.write("notes-api: error: interrupted\n")
    raise SystemExit(130) from None

raise SystemExit(main())
