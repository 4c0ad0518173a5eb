module rollgate/bench/set-weight

go 1.26.0
