package io.concord.compat.spring;

import java.time.Duration;
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

/**
 * Config format YAML with profile "dev": one YAML document per context under the
 * data key ({@code config/yamlapp,dev/data}, ...), read with
 * {@code GET /v1/kv/<context>/?recurse}.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConfigYamlTests extends ConcordTestBase {

	static final String NAME = "yamlapp";

	static ConfigurableApplicationContext app;

	@BeforeAll
	static void writeKeysAndStart() {
		setup(() -> {
			consul.kvPut("config/application/data", """
					compat:
					  level: application
					  shared: from-application-yaml
					""");
			consul.kvPut("config/yamlapp/data", """
					compat:
					  level: yamlapp
					  list:
					    - first
					    - second
					  map:
					    inner: value
					""");
			consul.kvPut("config/yamlapp,dev/data", """
					compat:
					  level: yamlapp-dev
					greeting:
					  message: yaml v1
					""");
			// Keys other than the data key are ignored in YAML format.
			consul.kvPut("config/yamlapp/compat/ignored", "should-not-load");
			app = startApp(NAME, newInstanceId(NAME), Map.of("spring.cloud.consul.config.format", "YAML"), "dev");
		});
	}

	@Test
	@Order(1)
	void profileDocumentWins() {
		assertEquals("yamlapp-dev", env().getProperty("compat.level"));
	}

	@Test
	@Order(2)
	void yamlStructuresAreFlattened() {
		Environment env = env();
		assertEquals("from-application-yaml", env.getProperty("compat.shared"));
		assertEquals("first", env.getProperty("compat.list[0]"));
		assertEquals("second", env.getProperty("compat.list[1]"));
		assertEquals("value", env.getProperty("compat.map.inner"));
		assertEquals(null, env.getProperty("compat.ignored"), "only the data key is parsed");
	}

	@Test
	@Order(3)
	void yamlChangeReachesRefreshScopeBean() {
		assertEquals("yaml v1", app.getBean(Greeter.class).message());
		consul.kvPut("config/yamlapp,dev/data", """
				compat:
				  level: yamlapp-dev
				greeting:
				  message: yaml v2
				""");
		await(Duration.ofSeconds(20), () -> {
			String m = app.getBean(Greeter.class).message();
			return "yaml v2".equals(m) ? null : "@RefreshScope bean still says '" + m + "'";
		});
	}

	static Environment env() {
		return app.getEnvironment();
	}

}
