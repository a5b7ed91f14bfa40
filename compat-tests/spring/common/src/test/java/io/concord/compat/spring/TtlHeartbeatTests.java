package io.concord.compat.spring;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.cloud.client.discovery.DiscoveryClient;
import org.springframework.cloud.consul.discovery.TtlScheduler;
import org.springframework.context.ConfigurableApplicationContext;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Registration with a TTL check kept alive by Spring's heartbeat
 * ({@code PUT /v1/agent/check/pass/service:<id>}), TTL expiry once heartbeats stop, and
 * {@code query-passing=true} hiding the expired instance.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TtlHeartbeatTests extends ConcordTestBase {

	static final String NAME = "reg-ttl";

	static final Map<String, String> TTL = Map.of(
			"spring.cloud.consul.discovery.heartbeat.enabled", "true",
			"spring.cloud.consul.discovery.heartbeat.ttl", "3s",
			"spring.cloud.consul.discovery.heartbeat.reregister-service-on-failure", "true",
			"spring.cloud.consul.discovery.query-passing", "true");

	static String id;

	static ConfigurableApplicationContext app;

	static String idC;

	static long cStopped;

	@BeforeAll
	static void startApp() {
		setup(() -> {
			id = newInstanceId(NAME);
			app = startApp(NAME, id, TTL);
			// C, for the reaping test: its heartbeat is cancelled right away, so its
			// check is (or soon turns) critical and the agent's reaper has to remove it.
			idC = newInstanceId(NAME + "-reap");
			Map<String, String> props = new java.util.HashMap<>(TTL);
			props.put("spring.cloud.consul.discovery.health-check-critical-timeout", "2s");
			props.put("spring.cloud.consul.discovery.heartbeat.reregister-service-on-failure", "false");
			ConfigurableApplicationContext c = startApp(NAME + "-reap", idC, props);
			c.getBean(TtlScheduler.class).remove(idC);
			cStopped = System.nanoTime();
		});
	}

	@Test
	@Order(1)
	void registersTtlCheck() {
		JsonNode svc = consul.agentService(id);
		if (svc.isMissingNode()) {
			throw fail("service " + id + " not in /v1/agent/services");
		}
		JsonNode check = consul.agentCheck("service:" + id);
		if (check.isMissingNode()) {
			throw fail("default TTL check id service:" + id + " not in /v1/agent/checks");
		}
		assertEquals("ttl", check.path("Type").asText(), "check Type: " + check);
		assertEquals(id, check.path("ServiceID").asText());
		// Spring sends the first heartbeat right away, then every ttl*2/3.
		await(Duration.ofSeconds(10), () -> {
			JsonNode c = consul.agentCheck("service:" + id);
			return "passing".equals(c.path("Status").asText()) ? null : "TTL check not passing: " + c;
		});
	}

	@Test
	@Order(2)
	void heartbeatKeepsCheckPassing() throws InterruptedException {
		// Over more than two TTL periods the check must stay passing.
		long end = System.nanoTime() + Duration.ofSeconds(7).toNanos();
		while (System.nanoTime() < end) {
			JsonNode c = consul.agentCheck("service:" + id);
			if (!"passing".equals(c.path("Status").asText())) {
				throw fail("TTL check fell out of passing while heartbeats flow: " + c);
			}
			Thread.sleep(500);
		}
	}

	@Test
	@Order(3)
	void ttlExpiresWhenHeartbeatStopsAndQueryPassingHidesIt() {
		// A second instance; once it is passing its heartbeat task is cancelled
		// (TtlScheduler.remove, what deregistration does first) while the app keeps
		// running, so only the agent's TTL timer can turn its check critical.
		String idB = newInstanceId(NAME);
		ConfigurableApplicationContext b = startApp(NAME, idB, TTL);
		await(Duration.ofSeconds(10), () -> {
			JsonNode c = consul.agentCheck("service:" + idB);
			return "passing".equals(c.path("Status").asText()) ? null : "B's TTL check not passing: " + c;
		});
		DiscoveryClient dc = app.getBean(DiscoveryClient.class);
		await(Duration.ofSeconds(5), () -> {
			List<String> ids = ids(dc.getInstances(NAME));
			return ids.contains(idB) && ids.contains(id) ? null : "both instances passing, but getInstances " + ids;
		});

		b.getBean(TtlScheduler.class).remove(idB);
		// A warning is not passing either: query-passing hides it too.
		ConsulHttp.Resp warn = consul.put("/v1/agent/check/warn/service:" + idB + "?note=degraded", null);
		assertEquals(200, warn.status(), warn.toString());
		JsonNode warned = consul.agentCheck("service:" + idB);
		assertEquals("warning", warned.path("Status").asText(), warned.toString());
		assertEquals("degraded", warned.path("Output").asText(), "?note= becomes Output: " + warned);
		await(Duration.ofSeconds(5), () -> {
			List<String> ids = ids(dc.getInstances(NAME));
			return ids.equals(List.of(id)) ? null : "warning instance not hidden by query-passing: " + ids;
		});
		long stopped = System.nanoTime();
		await(Duration.ofSeconds(12), () -> {
			JsonNode c = consul.agentCheck("service:" + idB);
			return "critical".equals(c.path("Status").asText()) ? null : "B's TTL check did not expire: " + c;
		});
		long secs = Duration.ofNanos(System.nanoTime() - stopped).toSeconds();
		JsonNode expired = consul.agentCheck("service:" + idB);
		// Consul (agent/checks CheckTTL.getExpiredOutput) keeps the last output.
		String out = expired.path("Output").asText();
		if (!"TTL expired (last output before timeout follows): degraded".equals(out)) {
			throw fail("expired TTL check: Output '" + out + "', Consul says 'TTL expired (last output before "
					+ "timeout follows): degraded'; check: " + expired);
		}
		if (secs < 1) {
			throw fail("check went critical " + secs + " s after the last heartbeat; TTL is 3 s: " + expired);
		}
		List<String> ids = ids(dc.getInstances(NAME));
		assertEquals(List.of(id), ids, "query-passing=true must hide the expired instance");
		JsonNode all = consul.get("/v1/health/service/" + NAME + "?passing=false").json();
		assertEquals(2, all.size(), "passing=false means no filter: " + all);
		JsonNode passing = consul.get("/v1/health/service/" + NAME + "?passing=true").json();
		assertEquals(1, passing.size(), "passing=true: " + passing);
		assertEquals(id, passing.path(0).path("Service").path("ID").asText());
		stopApp(b);
		assertTrue(consul.agentService(idB).isMissingNode(), "B deregistered on shutdown");
	}

	@Test
	@Order(4)
	void heartbeatReregistersServiceTheAgentLost() {
		// reregister-service-on-failure: a heartbeat answered 404 ("Unknown check
		// ID") or 500 makes Spring register the service again. 5.x cannot do this:
		// its client swallows 4xx/5xx (no exception reaches TtlScheduler).
		Assumptions.assumeTrue(line().equals("4"),
				"Spring Cloud Consul 5.x never re-registers (RestClient status handlers swallow 4xx/5xx)");
		ConsulHttp.Resp r = consul.put("/v1/agent/service/deregister/" + id, null);
		assertEquals(200, r.status(), r.toString());
		assertTrue(consul.agentService(id).isMissingNode(), "deregistered behind Spring's back");
		ConsulHttp.Resp pass = consul.put("/v1/agent/check/pass/service:" + id, null);
		if (pass.status() != 404 && pass.status() != 500) {
			throw fail("pass on an unknown check must be 404 (Consul: Unknown check ID ...), got " + pass);
		}
		await(Duration.ofSeconds(10), () -> consul.agentService(id).isMissingNode()
				? "not re-registered after heartbeat failure" : null);
		await(Duration.ofSeconds(10), () -> {
			JsonNode c = consul.agentCheck("service:" + id);
			return "passing".equals(c.path("Status").asText()) ? null : "re-registered check not passing: " + c;
		});
	}

	@Test
	@Order(5)
	void expiredTtlCheckWithoutOutputSaysTtlExpired() {
		// C's heartbeats (if any got out) carried no note, so its last output is
		// empty; Consul then reports just "TTL expired" (getExpiredOutput).
		await(Duration.ofSeconds(10), () -> {
			JsonNode c = consul.agentCheck("service:" + idC);
			return "critical".equals(c.path("Status").asText()) ? null : "C's TTL check not critical: " + c;
		});
		JsonNode c = consul.agentCheck("service:" + idC);
		String out = c.path("Output").asText();
		if (!"TTL expired".equals(out)) {
			throw fail("expired TTL check with no previous output: Output '" + out + "', Consul says 'TTL expired' "
					+ "(CheckTTL.getExpiredOutput adds the suffix only for a non-empty last output); check: " + c);
		}
	}

	@Test
	@Order(6)
	void criticalServiceIsReapedAfterCriticalTimeout() {
		// C (started in setup, heartbeat cancelled at once) registered with
		// health-check-critical-timeout=2s -> Check.DeregisterCriticalServiceAfter.
		// Consul clamps it to check_deregister_interval_min (1m) and reaps every
		// check_reap_interval (30s); both are non-user settings, so dev agents too:
		// the service goes 60-90 s after its check turned critical.
		long waited = Duration.ofNanos(System.nanoTime() - cStopped).toSeconds();
		await(Duration.ofSeconds(Math.max(10, 110 - waited)), () -> {
			JsonNode svc = consul.agentService(idC);
			return svc.isMissingNode() ? null
					: "critical service with DeregisterCriticalServiceAfter=2s not reaped; check: "
							+ consul.agentCheck("service:" + idC);
		});
		long total = Duration.ofNanos(System.nanoTime() - cStopped).toSeconds();
		if (total < 50) {
			throw fail("reaped " + total + " s after the heartbeat stopped; Consul waits at least 1 min");
		}
	}

	@Test
	@Order(7)
	void deregistersOnShutdown() {
		stopApp(app);
		JsonNode svc = consul.agentService(id);
		if (!svc.isMissingNode()) {
			throw fail("still in /v1/agent/services after context close: " + svc);
		}
		assertTrue(consul.agentCheck("service:" + id).isMissingNode(), "TTL check removed");
	}

}
