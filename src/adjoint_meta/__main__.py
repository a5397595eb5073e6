from adjoint_meta.cli import main

raise SystemExit(main())
