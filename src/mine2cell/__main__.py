from mine2cell.cli import main

main()
