package io.concord.compat.spring;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import io.concord.compat.spring.app.CompatApp.Greeter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.core.env.Environment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * Config format KEY_VALUE (the default) with profile "dev": contexts
 * config/kvapp,dev/ > config/kvapp/ > config/application,dev/ > config/application/,
 * loaded with {@code GET /v1/kv/<context>/?recurse}; the config watch
 * ({@code ?recurse&wait=1s&index=N}) refreshes a {@code @RefreshScope} bean.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConfigKeyValueTests extends ConcordTestBase {

	static final String NAME = "kvapp";

	static ConfigurableApplicationContext app;

	static WireRecorder wire;

	@BeforeAll
	static void writeKeysAndStart() {
		setup(() -> {
			consul.kvPut("config/application/compat/level", "application");
			consul.kvPut("config/application/compat/shared", "from-application");
			consul.kvPut("config/application,dev/compat/level", "application,dev");
			consul.kvPut("config/application,dev/compat/from-app-dev", "yes");
			consul.kvPut("config/kvapp/compat/level", "kvapp");
			consul.kvPut("config/kvapp/compat/only-app", "kvapp-only");
			consul.kvPut("config/kvapp/compat/nested/deep/key", "deep");
			consul.kvPut("config/kvapp/folder/", "");
			consul.kvPut("config/kvapp/compat/unicode", "h\u00e9llo \u2713 \u65e5\u672c");
			consul.kvPut("config/kvapp,dev/compat/level", "kvapp,dev");
			consul.kvPut("config/kvapp,dev/greeting/message", "hello v1");
			consul.kvPut("config/kvapp,prod/compat/level", "kvapp,prod");
			consul.kvPut("config/otherapp/compat/other", "other");
			wire = new WireRecorder(concord.url(), "ConfigKeyValueTests");
			app = startApp(NAME, newInstanceId(NAME),
					Map.of("spring.cloud.consul.port", Integer.toString(wire.port())), "dev");
		});
	}

	@Test
	@Order(1)
	void profileSpecificAppContextWins() {
		assertEquals("kvapp,dev", env().getProperty("compat.level"));
	}

	@Test
	@Order(2)
	void keysFromAllContextsAreMerged() {
		Environment env = env();
		assertEquals("from-application", env.getProperty("compat.shared"));
		assertEquals("yes", env.getProperty("compat.from-app-dev"));
		assertEquals("kvapp-only", env.getProperty("compat.only-app"));
		assertEquals("deep", env.getProperty("compat.nested.deep.key"), "nested key path becomes dotted name");
		assertEquals("h\u00e9llo \u2713 \u65e5\u672c", env.getProperty("compat.unicode"), "UTF-8 value round trip");
	}

	@Test
	@Order(3)
	void otherContextsAreNotLoaded() {
		assertNull(env().getProperty("compat.other"), "config/otherapp/ must not be read");
	}

	@Test
	@Order(4)
	void kvChangeReachesRefreshScopeBean() {
		assertEquals("hello v1", app.getBean(Greeter.class).message());
		consul.kvPut("config/kvapp,dev/greeting/message", "hello v2");
		await(Duration.ofSeconds(20), () -> {
			String m = app.getBean(Greeter.class).message();
			return "hello v2".equals(m) ? null : "@RefreshScope bean still says '" + m + "'";
		});
	}

	@Test
	@Order(5)
	void newKeyInLowerContextAppearsAfterRefresh() {
		consul.kvPut("config/application/compat/added", "added-later");
		await(Duration.ofSeconds(20), () -> {
			String v = env().getProperty("compat.added");
			return "added-later".equals(v) ? null : "compat.added = " + v;
		});
	}

	@Test
	@Order(6)
	void deletedKeyDisappearsAfterRefresh() {
		// The deletion leaves the context non-empty, so the watch sees a new index.
		consul.kvDelete("config/kvapp/compat/only-app");
		await(Duration.ofSeconds(20), () -> {
			String v = env().getProperty("compat.only-app");
			return v == null ? null : "compat.only-app still " + v;
		});
	}

	@Test
	@Order(7)
	void configWatchBlocksOnKvIndex() throws InterruptedException {
		// Four contexts polled in turn with ?recurse&wait=1s&index=<X-Consul-Index>
		// and a 500 ms delay between rounds: a server that blocks answers each after
		// ~1 s (about 3 requests in 3 s); one that ignores index/wait answers at once
		// (dozens).
		Thread.sleep(1500);
		long from = System.nanoTime();
		int before = watchRequests().size();
		Thread.sleep(3000);
		List<WireRecorder.Exchange> reqs = watchRequests();
		int n = reqs.size() - before;
		if (n > 8) {
			throw fail(n + " KV watch requests in 3 s, the server did not block on index/wait: "
					+ reqs.subList(before, Math.min(reqs.size(), before + 10)));
		}
		if (n < 1) {
			throw fail("no KV watch request in 3 s: the config watch stalled");
		}
		for (WireRecorder.Exchange x : reqs) {
			if (x.status() != 200) {
				throw fail("KV watch request failed: " + x);
			}
		}
	}

	private static List<WireRecorder.Exchange> watchRequests() {
		return wire.exchanges()
			.stream()
			.filter(x -> x.method().equals("GET") && x.rawUri().startsWith("/v1/kv/") && x.rawUri().contains("wait="))
			.toList();
	}

	@org.junit.jupiter.api.AfterAll
	static void stopWire() {
		closeApps();
		if (wire != null) {
			wire.close();
		}
	}

	static Environment env() {
		return app.getEnvironment();
	}

}
