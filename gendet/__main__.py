from gendet.cli.main import main

raise SystemExit(main())
