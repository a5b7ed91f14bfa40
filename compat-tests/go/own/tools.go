//go:build tools

package own

// This file is never compiled (build tag "tools"). It records the packages
// that the official github.com/hashicorp/consul/api and api/watch test
// suites import, so that `go mod tidy` keeps them in go.mod/go.sum and
// `go test github.com/hashicorp/consul/api` works from this module.
import (
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/go-cmp/cmp/cmpopts"
	_ "github.com/hashicorp/consul/api"
	_ "github.com/hashicorp/consul/api/watch"
	_ "github.com/hashicorp/consul/sdk/testutil"
	_ "github.com/hashicorp/consul/sdk/testutil/retry"
	_ "github.com/hashicorp/go-uuid"
	_ "github.com/hashicorp/serf/coordinate"
	_ "github.com/hashicorp/serf/serf"
	_ "github.com/stretchr/testify/assert"
	_ "github.com/stretchr/testify/mock"
	_ "github.com/stretchr/testify/require"
)
