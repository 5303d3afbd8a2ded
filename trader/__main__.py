from trader.cli import main

main()
