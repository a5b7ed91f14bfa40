package io.concord.compat.spring;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import io.concord.compat.spring.app.CompatApp.HeartbeatRecorder;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.context.ConfigurableApplicationContext;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * ConsulCatalogWatch: blocking {@code GET /v1/catalog/services?wait=1s&index=N},
 * publishing a HeartbeatEvent carrying the X-Consul-Index after each call.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class CatalogWatchTests extends ConcordTestBase {

	static final String NAME = "watcher";

	static ConfigurableApplicationContext app;

	static HeartbeatRecorder recorder;

	@BeforeAll
	static void startApp() {
		setup(() -> {
			app = startApp(NAME, newInstanceId(NAME), Map.of(
					"spring.cloud.consul.discovery.catalog-services-watch-delay", "200",
					"spring.cloud.consul.discovery.catalog-services-watch-timeout", "1"));
			recorder = app.getBean(HeartbeatRecorder.class);
		});
	}

	@Test
	@Order(1)
	void publishesHeartbeatEventsWithCatalogIndex() {
		await(Duration.ofSeconds(15), () -> {
			List<Object> v = recorder.values();
			return v.size() >= 3 ? null : "HeartbeatEvents so far: " + v;
		});
		for (Object v : recorder.values()) {
			if (!(v instanceof Number) || ((Number) v).longValue() <= 0) {
				throw fail("HeartbeatEvent value must be the (positive) X-Consul-Index, got " + recorder.values());
			}
		}
	}

	@Test
	@Order(2)
	void heartbeatIndexAdvancesWhenCatalogChanges() {
		long before = maxIndex();
		String body = "{\"ID\":\"watch-other-1\",\"Name\":\"watch-other\",\"Port\":1234,\"Tags\":[\"x\"]}";
		ConsulHttp.Resp r = consul.put("/v1/agent/service/register", body);
		assertEquals(200, r.status(), r.toString());
		await(Duration.ofSeconds(10), () -> {
			long now = maxIndex();
			return now > before ? null : "no HeartbeatEvent with an index above " + before + ": " + recorder.values();
		});
		long afterRegister = maxIndex();
		consul.put("/v1/agent/service/deregister/watch-other-1", null);
		await(Duration.ofSeconds(10), () -> {
			long now = maxIndex();
			return now > afterRegister ? null
					: "no HeartbeatEvent with an index above " + afterRegister + " after deregister: "
							+ recorder.values();
		});
	}

	@Test
	@Order(3)
	void heartbeatIndexNeverGoesBackwards() {
		long prev = 0;
		for (Object v : recorder.values()) {
			long cur = ((Number) v).longValue();
			if (cur < prev) {
				throw fail("X-Consul-Index went backwards: " + recorder.values());
			}
			prev = cur;
		}
	}

	@Test
	@Order(4)
	void catalogWatchBlocksWhileNothingChanges() throws InterruptedException {
		// wait=1s and a 200 ms delay: a blocking server answers about every 1.2 s; one
		// that ignores index/wait answers at once (about 15 events in 3 s).
		Thread.sleep(1500);
		int before = recorder.values().size();
		Thread.sleep(3000);
		int events = recorder.values().size() - before;
		if (events > 6) {
			throw fail(events + " HeartbeatEvents in 3 s: GET /v1/catalog/services?wait=1s&index=<current> "
					+ "returned without blocking");
		}
		if (events < 1) {
			throw fail("no HeartbeatEvent in 3 s: the catalog watch stalled: " + recorder.values());
		}
	}

	private static long maxIndex() {
		return recorder.values().stream().mapToLong(v -> ((Number) v).longValue()).max().orElse(0);
	}

}
