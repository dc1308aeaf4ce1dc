module medserve

go 1.26
