package io.concord.compat.spring;

import java.net.URI;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.cloud.client.ServiceInstance;
import org.springframework.cloud.client.discovery.DiscoveryClient;
import org.springframework.cloud.client.loadbalancer.LoadBalancerClient;
import org.springframework.cloud.consul.discovery.ConsulDiscoveryProperties;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.web.client.RestTemplate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Auto-registration with the default HTTP check; tags and metadata; DiscoveryClient,
 * LoadBalancer, actuator endpoints that talk to Consul; maintenance through the
 * service-registry endpoint; deregistration on shutdown.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class HttpCheckRegistrationTests extends ConcordTestBase {

	static final String NAME = "reg-http";

	static String id;

	static ConfigurableApplicationContext app;

	static int port;

	@BeforeAll
	static void startApp() {
		setup(() -> {
			id = newInstanceId(NAME);
			app = startApp(NAME, id, Map.of(
					"spring.cloud.consul.discovery.tags", "alpha,beta,version=1.2",
					"spring.cloud.consul.discovery.metadata.team", "core",
					"spring.cloud.consul.discovery.metadata.build", "42",
					"spring.cloud.consul.discovery.instance-zone", "zone-a"));
			port = webPort(app);
		});
	}

	@Test
	@Order(1)
	void registersServiceWithHttpCheck() {
		JsonNode svc = consul.agentService(id);
		if (svc.isMissingNode()) {
			throw fail("service " + id + " not in /v1/agent/services");
		}
		assertEquals(id, svc.path("ID").asText());
		assertEquals(NAME, svc.path("Service").asText());
		assertEquals(port, svc.path("Port").asInt(), "Port");
		assertEquals("127.0.0.1", svc.path("Address").asText(), "Address");

		String checkId = "service:" + id;
		JsonNode check = consul.agentCheck(checkId);
		if (check.isMissingNode()) {
			throw fail("default check id " + checkId + " not in /v1/agent/checks");
		}
		assertEquals(id, check.path("ServiceID").asText(), "check ServiceID");
		assertEquals(NAME, check.path("ServiceName").asText(), "check ServiceName");
		assertEquals("http", check.path("Type").asText(), "check Type");
		assertEquals("Service '" + NAME + "' check", check.path("Name").asText(), "default check Name");
		// The agent runs the check against /actuator/health (interval 1s).
		await(Duration.ofSeconds(15), () -> {
			JsonNode c = consul.agentCheck(checkId);
			return "passing".equals(c.path("Status").asText()) ? null : "check not passing: " + c;
		});
	}

	@Test
	@Order(2)
	void tagsAndMetadataInAgentServices() {
		JsonNode svc = consul.agentService(id);
		List<String> tags = texts(svc.path("Tags"));
		assertTrue(tags.containsAll(List.of("alpha", "beta", "version=1.2")), "Tags " + tags);
		JsonNode meta = svc.path("Meta");
		assertEquals("core", meta.path("team").asText(), "Meta " + meta);
		assertEquals("42", meta.path("build").asText(), "Meta " + meta);
		assertEquals("zone-a", meta.path("zone").asText(), "Meta " + meta);
		assertEquals("false", meta.path("secure").asText(), "Meta " + meta);
	}

	@Test
	@Order(3)
	void tagsAndMetadataInCatalog() {
		JsonNode services = consul.get("/v1/catalog/services").json();
		List<String> catalogTags = texts(services.path(NAME));
		if (!catalogTags.containsAll(List.of("alpha", "beta", "version=1.2"))) {
			throw fail("/v1/catalog/services tags for " + NAME + ": " + catalogTags);
		}
		// The agent syncs to the catalog (anti-entropy); allow a moment.
		await(Duration.ofSeconds(10), () -> {
			JsonNode entries = consul.get("/v1/catalog/service/" + NAME).json();
			for (JsonNode e : entries) {
				if (id.equals(e.path("ServiceID").asText())) {
					if (e.path("ServicePort").asInt() != port) {
						return "ServicePort " + e;
					}
					if (!texts(e.path("ServiceTags")).contains("beta")) {
						return "ServiceTags " + e;
					}
					if (!"core".equals(e.path("ServiceMeta").path("team").asText())) {
						return "ServiceMeta " + e;
					}
					if (!"127.0.0.1".equals(e.path("ServiceAddress").asText())) {
						return "ServiceAddress " + e;
					}
					return null;
				}
			}
			return id + " not in /v1/catalog/service/" + NAME + ": " + entries;
		});
	}

	@Test
	@Order(4)
	void discoveryClientFindsInstance() {
		DiscoveryClient dc = app.getBean(DiscoveryClient.class);
		List<String> services = dc.getServices();
		assertTrue(services.contains(NAME), "getServices() " + services);
		List<ServiceInstance> instances = dc.getInstances(NAME);
		assertEquals(1, instances.size(), "getInstances() " + instances);
		ServiceInstance si = instances.get(0);
		assertEquals(id, si.getInstanceId(), "instanceId");
		assertEquals("127.0.0.1", si.getHost(), "host");
		assertEquals(port, si.getPort(), "port");
		assertEquals(false, si.isSecure(), "secure");
		assertEquals("core", si.getMetadata().get("team"), "metadata " + si.getMetadata());
		assertEquals("zone-a", si.getMetadata().get("zone"), "metadata " + si.getMetadata());
		assertEquals(URI.create("http://127.0.0.1:" + port), si.getUri());
	}

	@Test
	@Order(5)
	void loadBalancerChoosesInstance() {
		LoadBalancerClient lb = app.getBean(LoadBalancerClient.class);
		ServiceInstance chosen = lb.choose(NAME);
		assertNotNull(chosen, "LoadBalancerClient.choose(" + NAME + ")");
		assertEquals(port, chosen.getPort());
		RestTemplate rt = app.getBean("lbRestTemplate", RestTemplate.class);
		assertEquals(id, rt.getForObject("http://" + NAME + "/hello", String.class));
	}

	@Test
	@Order(6)
	void queryTagsAndConsistencyModeFilterInstances() throws Exception {
		// default-query-tag "a,b" becomes ?tag=a&tag=b (all must match); values go
		// out raw ("version=1.2"). consistency-mode adds a bare ?stale / ?consistent.
		ConsulDiscoveryProperties props = app.getBean(ConsulDiscoveryProperties.class);
		DiscoveryClient dc = app.getBean(DiscoveryClient.class);
		try {
			String[][] cases = { { "beta", id }, { "alpha,beta", id }, { "version=1.2", id }, { "alpha,nope", "" },
					{ "nope", "" } };
			for (String[] c : cases) {
				props.setDefaultQueryTag(c[0]);
				List<String> got = ids(dc.getInstances(NAME));
				List<String> want = c[1].isEmpty() ? List.of() : List.of(c[1]);
				if (!got.equals(want)) {
					throw fail("default-query-tag=" + c[0] + ": getInstances " + got + ", want " + want);
				}
			}
			props.setDefaultQueryTag(null);
			for (String mode : List.of("STALE", "CONSISTENT")) {
				setConsistencyMode(props, mode);
				List<String> got = ids(dc.getInstances(NAME));
				if (!got.equals(List.of(id))) {
					throw fail("consistency-mode=" + mode + ": getInstances " + got);
				}
			}
		}
		finally {
			props.setDefaultQueryTag(null);
			setConsistencyMode(props, "DEFAULT");
		}
	}

	/** The enum type differs between 4.x (Ecwid) and 5.x, so set it reflectively. */
	@SuppressWarnings({ "unchecked", "rawtypes" })
	private static void setConsistencyMode(ConsulDiscoveryProperties props, String mode) throws Exception {
		for (java.lang.reflect.Method m : props.getClass().getMethods()) {
			if (m.getName().equals("setConsistencyMode") && m.getParameterCount() == 1
					&& m.getParameterTypes()[0].isEnum()) {
				m.invoke(props, Enum.valueOf((Class<Enum>) m.getParameterTypes()[0], mode));
				return;
			}
		}
		throw new IllegalStateException("no setConsistencyMode(enum) on " + props.getClass());
	}

	@Test
	@Order(7)
	void portlessAndAddresslessServicesAreDiscovered() {
		// Registered by another client: no Port (Consul omits it, Spring reads 0) and
		// no Address (Spring falls back to the node's address).
		ConsulHttp.Resp r = consul.put("/v1/agent/service/register",
				"{\"ID\":\"noport-1\",\"Name\":\"noport\",\"Address\":\"noport.example\"}");
		assertEquals(200, r.status(), r.toString());
		r = consul.put("/v1/agent/service/register", "{\"ID\":\"noaddr-1\",\"Name\":\"noaddr\",\"Port\":7777}");
		assertEquals(200, r.status(), r.toString());
		try {
			DiscoveryClient dc = app.getBean(DiscoveryClient.class);
			List<ServiceInstance> noport = dc.getInstances("noport");
			assertEquals(1, noport.size(), "noport instances " + noport);
			assertEquals("noport.example", noport.get(0).getHost());
			assertEquals(0, noport.get(0).getPort(), "a service without Port");
			List<ServiceInstance> noaddr = dc.getInstances("noaddr");
			assertEquals(1, noaddr.size(), "noaddr instances " + noaddr);
			assertEquals(7777, noaddr.get(0).getPort());
			String nodeAddr = consul.get("/v1/catalog/nodes").json().path(0).path("Address").asText();
			assertEquals(nodeAddr, noaddr.get(0).getHost(), "host falls back to Node.Address");
		}
		finally {
			consul.put("/v1/agent/service/deregister/noport-1", null);
			consul.put("/v1/agent/service/deregister/noaddr-1", null);
		}
	}

	@Test
	@Order(8)
	void actuatorHealthShowsConsulUp() throws Exception {
		// ConsulHealthIndicator: GET /v1/status/leader + GET /v1/catalog/services.
		JsonNode health = ConsulHttp.JSON.readTree(http("GET", "/actuator/health", null).body());
		JsonNode consulHealth = health.path("components").path("consul");
		assertEquals("UP", consulHealth.path("status").asText(), "consul health " + consulHealth);
		assertEquals("UP", health.path("status").asText(), "health " + health);
	}

	@Test
	@Order(9)
	void serviceRegistryEndpointTogglesMaintenance() throws Exception {
		// OUT_OF_SERVICE -> PUT /v1/agent/service/maintenance/<id>?enable=true;
		// getStatus reads /v1/health/checks/<name> for "Service Maintenance Mode".
		HttpResponse<String> r = http("POST", "/actuator/serviceregistry", "{\"status\":\"OUT_OF_SERVICE\"}");
		assertTrue(r.statusCode() / 100 == 2, "POST serviceregistry -> " + r.statusCode() + " " + r.body());
		JsonNode maint = consul.agentCheck("_service_maintenance:" + id);
		if (!"critical".equals(maint.path("Status").asText())) {
			throw fail("no critical _service_maintenance:" + id + " check: " + maint);
		}
		assertEquals("Service Maintenance Mode", maint.path("Name").asText());
		// getStatus and health/service read the catalog, which the agent syncs right away.
		await(Duration.ofSeconds(5), () -> {
			String status = http("GET", "/actuator/serviceregistry", null).body();
			return status.contains("OUT_OF_SERVICE") ? null : "GET /actuator/serviceregistry -> " + status;
		});
		JsonNode passing = consul.get("/v1/health/service/" + NAME + "?passing=true").json();
		assertEquals(0, passing.size(), "passing instances in maintenance: " + passing);

		r = http("POST", "/actuator/serviceregistry", "{\"status\":\"UP\"}");
		assertTrue(r.statusCode() / 100 == 2, "POST serviceregistry UP -> " + r.statusCode());
		assertTrue(consul.agentCheck("_service_maintenance:" + id).isMissingNode(), "maintenance check removed");
		await(Duration.ofSeconds(5), () -> {
			String status = http("GET", "/actuator/serviceregistry", null).body();
			return status.contains("UP") ? null : "GET /actuator/serviceregistry -> " + status;
		});
	}

	@Test
	@Order(10)
	void consulActuatorEndpointListsCatalog() throws Exception {
		// ConsulEndpoint: agent/services, catalog/services, catalog/service/<n>, catalog/nodes.
		HttpResponse<String> r = http("GET", "/actuator/consul", null);
		assertEquals(200, r.statusCode(), r.body());
		JsonNode body = ConsulHttp.JSON.readTree(r.body());
		assertTrue(body.toString().contains(id), "/actuator/consul does not mention " + id + ": " + body);
		assertTrue(body.toString().contains("spring-it"), "/actuator/consul does not list node spring-it: " + body);
	}

	@Test
	@Order(11)
	void deregistersOnShutdown() {
		assertTrue(!consul.agentService(id).isMissingNode(), "registered before shutdown");
		stopApp(app);
		JsonNode svc = consul.agentService(id);
		if (!svc.isMissingNode()) {
			throw fail("still in /v1/agent/services after context close: " + svc);
		}
		assertTrue(consul.agentCheck("service:" + id).isMissingNode(), "check removed with the service");
		await(Duration.ofSeconds(10), () -> {
			JsonNode entries = consul.get("/v1/catalog/service/" + NAME).json();
			return entries.size() == 0 ? null : "still in catalog: " + entries;
		});
	}

	private static HttpResponse<String> http(String method, String path, String json) {
		try {
			return appHttp(port, method, path, json);
		}
		catch (Exception e) {
			throw new IllegalStateException(method + " " + path, e);
		}
	}

}
