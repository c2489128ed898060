"""`python -m devtools.simulator`"""

from devtools.simulator.app import main

main()
