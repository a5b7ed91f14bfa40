package io.concord.compat.spring;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import com.fasterxml.jackson.databind.JsonNode;
import io.concord.compat.spring.app.CompatApp.Greeter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.cloud.client.discovery.DiscoveryClient;
import org.springframework.context.ConfigurableApplicationContext;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code spring.cloud.consul.token} set: 4.x sends it as {@code ?token=}, 5.x as
 * {@code X-Consul-Token}. concord does not enforce ACLs yet (like a Consul with ACLs
 * disabled), so every call must still succeed: registration, TTL heartbeats, config
 * load and watch, discovery, deregistration.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class AclTokenTests extends ConcordTestBase {

	static final String NAME = "aclapp";

	static final String TOKEN = UUID.randomUUID().toString();

	static String id;

	static ConfigurableApplicationContext app;

	static WireRecorder wire;

	@BeforeAll
	static void writeKeysAndStart() {
		setup(() -> {
			consul.kvPut("config/aclapp/greeting/message", "acl v1");
			consul.kvPut("config/aclapp/compat/secret", "s3cret");
			id = newInstanceId(NAME);
			// The app talks to concord through a recording proxy, so the test can
			// see that the token really went over the wire.
			wire = new WireRecorder(concord.url(), "AclTokenTests");
			app = startApp(NAME, id, Map.of(
					"spring.cloud.consul.port", Integer.toString(wire.port()),
					"spring.cloud.consul.token", TOKEN,
					"spring.cloud.consul.discovery.heartbeat.enabled", "true",
					"spring.cloud.consul.discovery.heartbeat.ttl", "3s",
					"spring.cloud.consul.discovery.query-passing", "true"));
		});
	}

	@Test
	@Order(1)
	void tokenIsConfiguredForDiscoveryAndConfig() {
		assertEquals(TOKEN, app.getEnvironment().getProperty("spring.cloud.consul.token"));
	}

	@Test
	@Order(2)
	void registersAndHeartbeatsWithToken() {
		if (consul.agentService(id).isMissingNode()) {
			throw fail("service " + id + " not registered with a token configured");
		}
		await(Duration.ofSeconds(10), () -> {
			JsonNode c = consul.agentCheck("service:" + id);
			return "passing".equals(c.path("Status").asText()) ? null
					: "TTL check not passing (heartbeat with token): " + c;
		});
	}

	@Test
	@Order(3)
	void configLoadsWithToken() {
		assertEquals("s3cret", app.getEnvironment().getProperty("compat.secret"));
	}

	@Test
	@Order(4)
	void discoveryWorksWithToken() {
		DiscoveryClient dc = app.getBean(DiscoveryClient.class);
		assertTrue(dc.getServices().contains(NAME), "getServices " + dc.getServices());
		assertEquals(List.of(id), ids(dc.getInstances(NAME)));
	}

	@Test
	@Order(5)
	void configWatchWorksWithToken() {
		assertEquals("acl v1", app.getBean(Greeter.class).message());
		consul.kvPut("config/aclapp/greeting/message", "acl v2");
		await(Duration.ofSeconds(20), () -> {
			String m = app.getBean(Greeter.class).message();
			return "acl v2".equals(m) ? null : "@RefreshScope bean still says '" + m + "'";
		});
	}

	@Test
	@Order(6)
	void deregistersWithToken() {
		stopApp(app);
		JsonNode svc = consul.agentService(id);
		if (!svc.isMissingNode()) {
			throw fail("still registered after shutdown: " + svc);
		}
	}

	@Test
	@Order(7)
	void everyTokenBearingRequestSucceeded() {
		// 4.x (Ecwid consul-api) puts the token in ?token=, 5.x in X-Consul-Token.
		boolean query = line().equals("4");
		List<WireRecorder.Exchange> all = new java.util.ArrayList<>(wire.exchanges());
		// A heartbeat already in flight at shutdown may land after the deregister and
		// get a (correct) 404 for the unknown check: judge only what came before.
		for (int i = 0; i < all.size(); i++) {
			if (all.get(i).rawUri().startsWith("/v1/agent/service/deregister/")) {
				all = all.subList(0, i + 1);
				break;
			}
		}
		String[][] expected = {
				{ "PUT", "/v1/agent/service/register" },
				{ "PUT", "/v1/agent/check/pass/service:" + id },
				{ "GET", "/v1/kv/config/aclapp/" },
				{ "GET", "/v1/health/service/" + NAME },
				{ "GET", "/v1/catalog/services" },
				{ "PUT", "/v1/agent/service/deregister/" + id } };
		StringBuilder problems = new StringBuilder();
		for (String[] e : expected) {
			List<WireRecorder.Exchange> matching = all.stream()
				.filter(x -> x.method().equals(e[0]) && x.rawUri().startsWith(e[1]))
				.filter(x -> query ? x.tokenInQuery(TOKEN) : TOKEN.equals(x.tokenHeader()))
				.toList();
			if (matching.isEmpty()) {
				problems.append("\n  no ").append(e[0]).append(' ').append(e[1]).append(" carrying the token")
					.append(query ? " as ?token=" : " in X-Consul-Token");
			}
			for (WireRecorder.Exchange x : matching) {
				if (x.status() != 200) {
					problems.append("\n  ").append(x);
				}
			}
		}
		if (problems.length() > 0) {
			StringBuilder seen = new StringBuilder();
			all.stream().limit(60).forEach(x -> seen.append("\n    ").append(x));
			throw new AssertionError("token-bearing requests:" + problems + "\n  wire (first 60):" + seen);
		}
	}

	@org.junit.jupiter.api.AfterAll
	static void stopWire() {
		closeApps();
		if (wire != null) {
			wire.close();
		}
	}

}
