from oms.cli import main

main()
