// Go anchor for tern's "h2" and "tls" benchmark suites (bench/compare.sh h2,
// bench/compare.sh tls).
//
// net/http from the standard library only.  Cleartext HTTP/2 (h2c with prior
// knowledge) is switched on with http.Server.Protocols, as net/http's
// documentation recommends since Go 1.24 (golang.org/x/net/http2/h2c is
// deprecated in favour of it); HTTPS uses ListenAndServeTLS, which offers h2
// and http/1.1 by ALPN.  Everything else is left at its default.
//
//	GET /plaintext   200 text/plain "Hello, World!"
//
// Other paths get 404.
//
//	usage: h2 --listen 127.0.0.1:PORT                        HTTP/1.1 and h2c
//	       h2 --listen 127.0.0.1:PORT --tls-cert C --tls-key K  HTTPS (h2, http/1.1)
//
// Exits 0 on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

var helloBody = []byte("Hello, World!")

func plaintext(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", "13")
	w.Write(helloBody)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	cert := flag.String("tls-cert", "", "PEM certificate chain: serve HTTPS")
	key := flag.String("tls-key", "", "PEM private key")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /plaintext", plaintext)
	srv := &http.Server{Addr: *listen, Handler: mux}

	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.Shutdown(context.Background())
		close(done)
	}()

	var err error
	if *cert != "" {
		err = srv.ListenAndServeTLS(*cert, *key)
	} else {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		err = srv.ListenAndServe()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "h2:", err)
		os.Exit(1)
	}
	<-done
}
