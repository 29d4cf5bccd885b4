TEMPLATE = "hello, {name}, from a bundled package"
