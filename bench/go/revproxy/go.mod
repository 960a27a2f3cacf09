module tern.bench/revproxy

go 1.22
