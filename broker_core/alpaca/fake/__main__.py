from broker_core.alpaca.fake.cli import main

main()
