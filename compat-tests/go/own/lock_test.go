package own

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestLock_TwoContenders(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)

	opts := &api.LockOptions{Key: "service/leader", Value: []byte("x"), LockWaitTime: 2 * time.Second}
	l1, err := a.Client.LockOpts(opts)
	require.NoError(t, err)
	l2, err := a.Client.LockOpts(&api.LockOptions{Key: "service/leader", Value: []byte("y"), LockWaitTime: 2 * time.Second})
	require.NoError(t, err)

	lost1, err := l1.Lock(nil)
	require.NoError(t, err)
	require.NotNil(t, lost1, "first contender must acquire")

	p, _, err := a.Client.KV().Get("service/leader", nil)
	require.NoError(t, err)
	require.NotNil(t, p)
	require.NotEmpty(t, p.Session)
	require.Equal(t, uint64(api.LockFlagValue), p.Flags)
	require.Equal(t, uint64(1), p.LockIndex)

	stop2 := make(chan struct{})
	var lost2 <-chan struct{}
	done2 := make(chan error, 1)
	go func() {
		var err error
		lost2, err = l2.Lock(stop2)
		done2 <- err
	}()

	// The second contender must still be waiting.
	select {
	case err := <-done2:
		close(stop2)
		t.Fatalf("second contender returned while the first held the lock (err=%v)", err)
	case <-time.After(1500 * time.Millisecond):
	}
	select {
	case <-lost1:
		t.Fatal("first holder lost the lock while holding it")
	default:
	}

	require.NoError(t, l1.Unlock())

	select {
	case err := <-done2:
		require.NoError(t, err)
		require.NotNil(t, lost2, "second contender must acquire after release")
	case <-time.After(15 * time.Second):
		close(stop2)
		t.Fatal("second contender did not acquire within 15s of release")
	}

	p, _, err = a.Client.KV().Get("service/leader", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("y"), p.Value)
	require.Equal(t, uint64(2), p.LockIndex)

	// The first lock cannot be destroyed while the key is held.
	require.ErrorIs(t, l1.Destroy(), api.ErrLockInUse)

	require.NoError(t, l2.Unlock())
	require.NoError(t, l2.Destroy())
	p, _, err = a.Client.KV().Get("service/leader", nil)
	require.NoError(t, err)
	require.Nil(t, p)
}

func TestLock_OneShot(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)

	l1, err := a.Client.LockOpts(&api.LockOptions{Key: "oneshot"})
	require.NoError(t, err)
	lost, err := l1.Lock(nil)
	require.NoError(t, err)
	require.NotNil(t, lost)
	defer l1.Unlock()

	l2, err := a.Client.LockOpts(&api.LockOptions{Key: "oneshot", LockTryOnce: true, LockWaitTime: 250 * time.Millisecond})
	require.NoError(t, err)
	start := time.Now()
	ch, err := l2.Lock(nil)
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.Nil(t, ch, "one-shot lock must give up")
	require.GreaterOrEqual(t, elapsed, 250*time.Millisecond, "blocking query returned too early")
	require.Less(t, elapsed, 2*time.Second)
}

func TestSemaphore_TwoContenders(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)

	mk := func(v string) *api.Semaphore {
		s, err := a.Client.SemaphoreOpts(&api.SemaphoreOptions{
			Prefix:            "service/sema",
			Limit:             1,
			Value:             []byte(v),
			SemaphoreWaitTime: 2 * time.Second,
		})
		require.NoError(t, err)
		return s
	}
	s1, s2 := mk("one"), mk("two")

	lost1, err := s1.Acquire(nil)
	require.NoError(t, err)
	require.NotNil(t, lost1)

	lockKey, _, err := a.Client.KV().Get("service/sema/.lock", nil)
	require.NoError(t, err)
	require.NotNil(t, lockKey)
	require.Equal(t, uint64(api.SemaphoreFlagValue), lockKey.Flags)

	stop2 := make(chan struct{})
	var lost2 <-chan struct{}
	done2 := make(chan error, 1)
	go func() {
		var err error
		lost2, err = s2.Acquire(stop2)
		done2 <- err
	}()

	select {
	case err := <-done2:
		close(stop2)
		t.Fatalf("second semaphore holder got a slot while limit=1 was taken (err=%v)", err)
	case <-time.After(1500 * time.Millisecond):
	}

	require.NoError(t, s1.Release())

	select {
	case err := <-done2:
		require.NoError(t, err)
		require.NotNil(t, lost2)
	case <-time.After(15 * time.Second):
		close(stop2)
		t.Fatal("second contender did not acquire within 15s of release")
	}

	require.NoError(t, s2.Release())
	require.NoError(t, s2.Destroy())
	require.NoError(t, s1.Destroy())
	pairs, _, err := a.Client.KV().List("service/sema/", nil)
	require.NoError(t, err)
	require.Len(t, pairs, 0)
}

func TestSemaphore_LimitTwo(t *testing.T) {
	t.Parallel()
	a := StartAgent(t)
	var sems []*api.Semaphore
	for i := 0; i < 3; i++ {
		s, err := a.Client.SemaphoreOpts(&api.SemaphoreOptions{
			Prefix: "sema2", Limit: 2, SemaphoreTryOnce: true, SemaphoreWaitTime: 300 * time.Millisecond,
		})
		require.NoError(t, err)
		sems = append(sems, s)
	}
	ch, err := sems[0].Acquire(nil)
	require.NoError(t, err)
	require.NotNil(t, ch)
	ch, err = sems[1].Acquire(nil)
	require.NoError(t, err)
	require.NotNil(t, ch)
	ch, err = sems[2].Acquire(nil)
	require.NoError(t, err)
	require.Nil(t, ch, "third holder must not get a slot with limit 2")

	require.NoError(t, sems[0].Release())
	ch, err = sems[2].Acquire(nil)
	require.NoError(t, err)
	require.NotNil(t, ch, "a slot was freed")
	require.NoError(t, sems[1].Release())
	require.NoError(t, sems[2].Release())
}
