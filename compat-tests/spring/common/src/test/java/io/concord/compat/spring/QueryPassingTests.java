package io.concord.compat.spring;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.cloud.client.ServiceInstance;
import org.springframework.cloud.client.discovery.DiscoveryClient;
import org.springframework.cloud.client.loadbalancer.LoadBalancerClient;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.web.client.RestTemplate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/**
 * Three instances of one service: A healthy (reads with query-passing=true), B whose
 * HTTP check points at a stub answering 500 (reads with query-passing=false, the
 * control), C healthy but put into maintenance over the HTTP API.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class QueryPassingTests extends ConcordTestBase {

	static final String NAME = "qp";

	static HttpServer failing;

	/** Answers 200 only when the agent sends the configured check header. */
	static HttpServer headerCheck;

	static String idD;

	static ConfigurableApplicationContext d;

	static String idA, idB, idC;

	static ConfigurableApplicationContext a, b, c;

	@BeforeAll
	static void startInstances() {
		setup(() -> {
			failing = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
			failing.createContext("/", ex -> {
				byte[] body = "{\"status\":\"DOWN\"}".getBytes();
				ex.sendResponseHeaders(500, body.length);
				ex.getResponseBody().write(body);
				ex.close();
			});
			failing.start();
			headerCheck = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
			headerCheck.createContext("/", ex -> {
				boolean ok = "yes".equals(ex.getRequestHeaders().getFirst("X-Compat-Check"));
				byte[] body = (ok ? "{\"status\":\"UP\"}" : "missing X-Compat-Check header").getBytes();
				ex.sendResponseHeaders(ok ? 200 : 500, body.length);
				ex.getResponseBody().write(body);
				ex.close();
			});
			headerCheck.start();

			idA = newInstanceId(NAME + "-a");
			idB = newInstanceId(NAME + "-b");
			idC = newInstanceId(NAME + "-c");
			a = startApp(NAME, idA, Map.of("spring.cloud.consul.discovery.query-passing", "true"));
			b = startApp(NAME, idB, Map.of("spring.cloud.consul.discovery.query-passing", "false",
					"spring.cloud.consul.discovery.health-check-url",
					"http://127.0.0.1:" + failing.getAddress().getPort() + "/actuator/health"));
			c = startApp(NAME, idC, Map.of("spring.cloud.consul.discovery.query-passing", "true"));
			// D: a separate service whose HTTP check needs a header from
			// health-check-headers (sent as Check.Header {name: [values]}).
			idD = newInstanceId("qp-headers");
			d = startApp("qp-headers", idD, Map.of(
					"spring.cloud.consul.discovery.health-check-url",
					"http://127.0.0.1:" + headerCheck.getAddress().getPort() + "/health",
					"spring.cloud.consul.discovery.health-check-headers.X-Compat-Check", "yes",
					"spring.cloud.consul.discovery.health-check-timeout", "2s"));

		});
	}

	@AfterAll
	static void stopStub() {
		closeApps();
		if (failing != null) {
			failing.stop(0);
		}
		if (headerCheck != null) {
			headerCheck.stop(0);
		}
	}

	@Test
	@Order(1)
	void httpChecksReachExpectedStates() {
		await(Duration.ofSeconds(15), () -> {
			String sa = consul.agentCheck("service:" + idA).path("Status").asText();
			String sb = consul.agentCheck("service:" + idB).path("Status").asText();
			String sc = consul.agentCheck("service:" + idC).path("Status").asText();
			return sa.equals("passing") && sb.equals("critical") && sc.equals("passing") ? null
					: "check states A=" + sa + " B=" + sb + " C=" + sc + " (want passing/critical/passing)";
		});
		JsonNode checks = consul.get("/v1/health/checks/" + NAME).json();
		String out = null;
		for (JsonNode ch : checks) {
			if (("service:" + idB).equals(ch.path("CheckID").asText())) {
				out = ch.path("Status").asText();
			}
		}
		assertEquals("critical", out, "B's check in /v1/health/checks/" + NAME + ": " + checks);
	}

	@Test
	@Order(2)
	void httpCheckSendsConfiguredHeaders() {
		await(Duration.ofSeconds(10), () -> {
			JsonNode ch = consul.agentCheck("service:" + idD);
			return "passing".equals(ch.path("Status").asText()) ? null
					: "check with Header {X-Compat-Check: [yes]} not passing: " + ch;
		});
	}

	@Test
	@Order(3)
	void maintenanceAddsCriticalCheck() {
		ConsulHttp.Resp r = consul.put("/v1/agent/service/maintenance/" + idC + "?enable=true&reason=compat-test",
				null);
		if (r.status() != 200) {
			throw fail("maintenance enable failed: " + r);
		}
		JsonNode[] maint = new JsonNode[1];
		// /v1/health/checks is the catalog's view; the agent syncs it right after the change.
		await(Duration.ofSeconds(5), () -> {
			JsonNode checks = consul.get("/v1/health/checks/" + NAME).json();
			for (JsonNode ch : checks) {
				if (idC.equals(ch.path("ServiceID").asText())
						&& "Service Maintenance Mode".equalsIgnoreCase(ch.path("Name").asText())) {
					maint[0] = ch;
					return null;
				}
			}
			return "no 'Service Maintenance Mode' check for " + idC + " in " + checks;
		});
		assertEquals("critical", maint[0].path("Status").asText(), maint[0].toString());
		assertEquals("_service_maintenance:" + idC, maint[0].path("CheckID").asText());
		assertEquals("compat-test", maint[0].path("Notes").asText(), "maintenance reason goes to Notes");
	}

	@Test
	@Order(4)
	void queryPassingHidesFailingAndMaintenanceInstances() {
		List<String> ids = ids(a.getBean(DiscoveryClient.class).getInstances(NAME));
		if (!ids.equals(List.of(idA))) {
			throw fail("A (query-passing=true) getInstances: " + ids + ", want only " + idA);
		}
	}

	@Test
	@Order(5)
	void withoutQueryPassingAllInstancesAreListed() {
		List<String> ids = ids(b.getBean(DiscoveryClient.class).getInstances(NAME));
		List<String> want = new java.util.ArrayList<>(List.of(idA, idB, idC));
		want.sort(null);
		if (!ids.equals(want)) {
			throw fail("B (query-passing=false) getInstances: " + ids + ", want " + want);
		}
	}

	@Test
	@Order(6)
	void loadBalancerOnlyPicksPassingInstance() {
		LoadBalancerClient lb = a.getBean(LoadBalancerClient.class);
		RestTemplate rt = a.getBean("lbRestTemplate", RestTemplate.class);
		Set<String> seen = new HashSet<>();
		for (int i = 0; i < 8; i++) {
			ServiceInstance si = lb.choose(NAME);
			assertNotNull(si, "choose(" + NAME + ")");
			seen.add(si.getInstanceId());
			seen.add(rt.getForObject("http://" + NAME + "/hello", String.class));
		}
		assertEquals(Set.of(idA), seen, "load-balanced picks");
	}

	@Test
	@Order(7)
	void maintenanceOffRestoresInstance() {
		ConsulHttp.Resp r = consul.put("/v1/agent/service/maintenance/" + idC + "?enable=false", null);
		assertEquals(200, r.status(), r.toString());
		DiscoveryClient dc = a.getBean(DiscoveryClient.class);
		await(Duration.ofSeconds(10), () -> {
			List<String> ids = ids(dc.getInstances(NAME));
			List<String> want = new java.util.ArrayList<>(List.of(idA, idC));
			want.sort(null);
			return ids.equals(want) ? null : "after maintenance off, A sees " + ids + ", want " + want;
		});
	}

}
