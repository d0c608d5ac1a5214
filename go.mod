module github.com/tern-im/tern

go 1.26
