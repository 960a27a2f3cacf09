// The grpc-go anchor of bench/compare.sh grpc, and the suite's gRPC load
// client.
//
//	grpc ADDR                    serve h2c on ADDR: helloworld.Greeter's
//	                             SayHello (the examples module's generated
//	                             code) and bench.Stream, its ServiceDesc
//	                             written here by hand on helloworld's
//	                             messages (no proto of its own): Many, a
//	                             server stream of HelloReply "Hello <name>"
//	                             until the client cancels, and Echo, a
//	                             bidirectional stream answering each
//	                             HelloRequest with that reply
//	grpc load stream ADDR CONNS STREAMS SECONDS
//	grpc load bidi ADDR CONNS STREAMS SECONDS
//	grpc load rate ADDR CONNS RPS SECONDS
//	grpc load idle ADDR CONNS
//
// The load modes are in load.go; they drive tern's server and this one the
// same way, so the client's own cost is the same on both sides.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"

	"google.golang.org/grpc"
	pb "google.golang.org/grpc/examples/helloworld/helloworld"
)

type server struct {
	pb.UnimplementedGreeterServer
}

func (server) SayHello(_ context.Context, in *pb.HelloRequest) (*pb.HelloReply, error) {
	return &pb.HelloReply{Message: "Hello " + in.GetName()}, nil
}

// echo is bench.Stream/Echo's handler: one reply per request until the
// client half-closes.
func echo(_ any, stream grpc.ServerStream) error {
	for {
		in := new(pb.HelloRequest)
		if err := stream.RecvMsg(in); err != nil {
			return nil // io.EOF: the client is done (any other error ends the stream too)
		}
		if err := stream.SendMsg(&pb.HelloReply{Message: "Hello " + in.GetName()}); err != nil {
			return err
		}
	}
}

// many is bench.Stream/Many's handler: replies until the client cancels.
func many(_ any, stream grpc.ServerStream) error {
	in := new(pb.HelloRequest)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	reply := &pb.HelloReply{Message: "Hello " + in.GetName()}
	for {
		if err := stream.SendMsg(reply); err != nil {
			return err
		}
	}
}

var streamDesc = grpc.ServiceDesc{
	ServiceName: "bench.Stream",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Many", Handler: many, ServerStreams: true},
		{StreamName: "Echo", Handler: echo, ServerStreams: true, ClientStreams: true},
	},
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "load" {
		if err := load(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "grpc load:", err)
			os.Exit(1)
		}
		return
	}
	addr := "127.0.0.1:50051"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterGreeterServer(s, server{})
	s.RegisterService(&streamDesc, struct{}{})
	if err := s.Serve(l); err != nil {
		log.Fatal(err)
	}
}
