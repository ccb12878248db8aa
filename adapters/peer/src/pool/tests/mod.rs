mod balancer;
