// greeter_server.cc - the gRPC C++ anchor of bench/compare.sh grpc:
// helloworld.Greeter on Debian's libgrpc++ (the callback API, gRPC's
// recommended server API since 1.46), h2c on the address given.  Built by
// compare.sh (build_grpc_cpp) with protoc's C++ and grpc_cpp_plugin output
// of grpc-proto's helloworld.proto, as a user of the library would build it.
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <memory>
#include <string>

#include "helloworld.grpc.pb.h"

namespace {

class Greeter final : public helloworld::Greeter::CallbackService {
    grpc::ServerUnaryReactor *SayHello(grpc::CallbackServerContext *ctx, const helloworld::HelloRequest *req,
                                       helloworld::HelloReply *reply) override
    {
        reply->set_message("Hello " + req->name());
        grpc::ServerUnaryReactor *r = ctx->DefaultReactor();
        r->Finish(grpc::Status::OK);
        return r;
    }
};

}  // namespace

int main(int argc, char **argv)
{
    std::string addr = argc > 1 ? argv[1] : "127.0.0.1:50051";
    Greeter service;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(addr, grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        std::cerr << "greeter_server: cannot listen on " << addr << "\n";
        return 1;
    }
    server->Wait();
    return 0;
}
