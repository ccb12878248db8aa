mod balancer;
mod port;
