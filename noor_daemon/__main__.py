from noor_daemon.cli import main

main()
