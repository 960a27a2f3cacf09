// Go anchor for tern's "http" benchmark suite (bench/compare.sh http).
//
// The same endpoints as tern's example server (examples/hello), with
// net/http from the standard library only.  Go 1.19's ServeMux has no
// method or wildcard patterns, so requests are routed by hand:
//
//	GET /plaintext   200 text/plain "Hello, World!"
//	GET /json        200 application/json {"message":"Hello, World!"}
//	                 (marshalled per request, as TechEmpower asks)
//	POST /echo       200, the request body with the request's Content-Type;
//	                 bodies up to 8 MiB, larger ones refused with 413
//	GET /sleep?ms=N  answers 200 "slept N ms" after N ms (0 <= N <= 60000)
//	GET /users/:id   200 application/json {"id":"<id>"}
//
// HEAD is answered wherever GET is; other methods get 405, other paths 404.
//
//	usage: http --listen 127.0.0.1:PORT
//
// Exits 0 on SIGTERM or SIGINT.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const maxEcho = 8 << 20

var helloBody = []byte("Hello, World!")

type message struct {
	Message string `json:"message"`
}

type user struct {
	ID string `json:"id"`
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func plaintext(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, "GET", "HEAD") {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", "13")
	w.Write(helloBody)
}

func jsonHandler(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, "GET", "HEAD") {
		return
	}
	writeJSON(w, message{Message: "Hello, World!"})
}

func echo(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, "POST") {
		return
	}
	if r.ContentLength > maxEcho {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEcho))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "bad request body", http.StatusBadRequest)
		}
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func sleep(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, "GET", "HEAD") {
		return
	}
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > 60000 {
		http.Error(w, "ms must be an integer from 0 to 60000", http.StatusBadRequest)
		return
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "slept %d ms", ms)
}

func users(w http.ResponseWriter, r *http.Request, id string) {
	if id == "" || strings.Contains(id, "/") {
		http.NotFound(w, r)
		return
	}
	if !allow(w, r, "GET", "HEAD") {
		return
	}
	writeJSON(w, user{ID: id})
}

func route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch p {
	case "/plaintext":
		plaintext(w, r)
	case "/json":
		jsonHandler(w, r)
	case "/echo":
		echo(w, r)
	case "/sleep":
		sleep(w, r)
	default:
		if strings.HasPrefix(p, "/users/") {
			users(w, r, p[len("/users/"):])
		} else {
			http.NotFound(w, r)
		}
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go http: %v\n", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		os.Exit(0)
	}()
	srv := &http.Server{Handler: http.HandlerFunc(route)}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "go http: %v\n", err)
		os.Exit(1)
	}
}
