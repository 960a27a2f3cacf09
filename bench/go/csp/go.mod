module tern.bench/csp

go 1.19
