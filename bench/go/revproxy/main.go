// The gateway suite's Go anchor: net/http/httputil.ReverseProxy in front of
// one upstream, with a keep-alive pool large enough for the benchmark's
// connections (Go's default keeps 2 idle connections per host, which would
// make it dial on most requests and measure that instead).
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:8081", "host:port of the upstream")
	flag.Parse()
	target := &url.URL{Scheme: "http", Host: *upstream}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	srv := &http.Server{Addr: *listen, Handler: proxy}
	log.Fatal(srv.ListenAndServe())
}
