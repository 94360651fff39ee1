package org.mlcmanager.engine;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import javax.sql.DataSource;
import org.camunda.bpm.engine.impl.cfg.AbstractProcessEnginePlugin;
import org.camunda.bpm.engine.impl.cfg.ProcessEngineConfigurationImpl;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.context.event.ApplicationFailedEvent;
import org.springframework.boot.context.event.ApplicationReadyEvent;
import org.springframework.context.event.EventListener;
import org.springframework.stereotype.Component;

/**
 * Lets the nodes of a cluster start at once on one PostgreSQL database: a node's whole start-up
 * runs while it holds a PostgreSQL advisory lock, so nodes take turns.
 *
 * <p>What a start-up writes is checked first and written after by each node on its own: the schema
 * (created on an empty database), the admin user, the "All tasks" filter, {@link EngineAccess}'s users,
 * groups and authorizations, and {@link BpmnDirectoryDeployer}'s deployment. Two nodes doing that at
 * the same moment would both find nothing and both write: a failed start (a table or user created
 * twice) or doubles (two filters, two deployments). The lock is taken before the engine is built
 * (before the schema) and released once the application is ready, after the deployment; a node that
 * dies holding it releases it with its connection. Camunda's own deployment lock
 * ({@code deployment.lock}) guards later deployments, from Modeler or the workers.
 *
 * <p>Also names the node ({@code MLC_ENGINE_NODE_NAME}): the name is the engine's host name, which
 * the job log and metrics record, so Cockpit shows which node ran a job.
 */
@Component
public class ClusterStartup extends AbstractProcessEnginePlugin {

  private static final Logger LOG = LoggerFactory.getLogger(ClusterStartup.class);
  private static final String LOCK_KEY = "mlc-engine-startup";

  private final DataSource dataSource;
  private final String nodeName;
  private Connection lockConnection;

  public ClusterStartup(DataSource dataSource, @Value("${mlc.node-name:}") String nodeName) {
    this.dataSource = dataSource;
    this.nodeName = nodeName;
  }

  @Override
  public void preInit(ProcessEngineConfigurationImpl configuration) {
    if (nodeName != null && !nodeName.isBlank()) {
      configuration.setHostname(nodeName.trim());
    }
    lock();
  }

  private synchronized void lock() {
    try {
      Connection connection = dataSource.getConnection();
      if (!"PostgreSQL".equals(connection.getMetaData().getDatabaseProductName())) {
        connection.close();  // an embedded H2 file serves one node only: nothing to share
        return;
      }
      connection.setAutoCommit(true);  // a session lock, kept across the engine's own transactions
      if (!query(connection, "select pg_try_advisory_lock(hashtext(?))")) {
        LOG.info("another engine node is starting on this database: waiting for it to finish");
        query(connection, "select pg_advisory_lock(hashtext(?)) is null");
      }
      lockConnection = connection;
    } catch (SQLException e) {
      throw new IllegalStateException("cannot take the start-up lock on the engine database: " + e.getMessage(), e);
    }
  }

  /** Lets the next node start: this one has its schema, access and deployment in place. */
  @EventListener({ApplicationReadyEvent.class, ApplicationFailedEvent.class})
  public synchronized void release() {
    if (lockConnection == null) {
      return;
    }
    try (Connection connection = lockConnection) {
      query(connection, "select pg_advisory_unlock(hashtext(?))");
    } catch (SQLException e) {
      LOG.warn("could not release the start-up lock ({}); it goes with the connection", e.getMessage());
    } finally {
      lockConnection = null;
    }
  }

  private static boolean query(Connection connection, String sql) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(sql)) {
      statement.setString(1, LOCK_KEY);
      try (ResultSet result = statement.executeQuery()) {
        return result.next() && result.getBoolean(1);
      }
    }
  }
}
