package org.mlcmanager.engine.criteria;

import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.camunda.bpm.dmn.engine.DmnDecisionResult;
import org.camunda.bpm.engine.AuthorizationException;
import org.camunda.bpm.engine.ProcessEngine;
import org.camunda.bpm.engine.exception.NullValueException;

/**
 * {@code POST /engine-rest/mlc/test-criteria/{key}/evaluate}: evaluates the latest decision with
 * {@code key}, as Camunda's {@code /decision-definition/key/{key}/evaluate} does, for test criteria.
 *
 * <p>The body is {@code {"variables": {name: value}}} with plain JSON values (numbers, strings,
 * booleans, null, objects, lists), so every metric is in scope as itself, nested ones as FEEL
 * contexts. The answer is {@code {"rows": [{output: value}], "missing": [names]}}: the matched rows'
 * outputs and the variables expressions looked for and did not find. A decision that cannot be
 * evaluated is 422 with the engine's own message, every cause included (Camunda's endpoint keeps
 * only "Exception while evaluating decision"); an unknown key is 404.
 */
@Path("/mlc/test-criteria")
public class TestCriteriaResource {

  private static final int UNPROCESSABLE = 422;

  private final ProcessEngine engine;

  public TestCriteriaResource(ProcessEngine engine) {
    this.engine = engine;
  }

  @POST
  @Path("/{key}/evaluate")
  @Consumes(MediaType.APPLICATION_JSON)
  @Produces(MediaType.APPLICATION_JSON)
  public Response evaluate(@PathParam("key") String key, Map<String, Object> body) {
    Object given = body == null ? null : body.get("variables");
    if (given != null && !(given instanceof Map)) {
      return error(400, "InvalidRequestException", "variables must be a JSON object");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> variables = given == null ? Map.of() : (Map<String, Object>) given;
    if (engine.getRepositoryService().createDecisionDefinitionQuery().decisionDefinitionKey(key).count() == 0) {
      return error(404, "InvalidRequestException", "no decision definition with key " + key);
    }
    Set<String> missing = MissingValues.newSet();
    try {
      DmnDecisionResult result = MissingValues.collect(missing,
          () -> engine.getDecisionService().evaluateDecisionByKey(key).variables(variables).evaluate());
      List<Map<String, Object>> rows = new ArrayList<>();
      result.forEach(row -> rows.add(new LinkedHashMap<>(row.getEntryMap())));
      Map<String, Object> answer = new LinkedHashMap<>();
      answer.put("rows", rows);
      answer.put("missing", new ArrayList<>(missing));
      return Response.ok(answer).build();
    } catch (AuthorizationException | NullValueException e) {
      throw e;
    } catch (RuntimeException e) {
      return error(UNPROCESSABLE, "DecisionEvaluationException", causes(e));
    }
  }

  private static String causes(Throwable error) {
    List<String> messages = new ArrayList<>();
    for (Throwable cause = error; cause != null && messages.size() < 10; cause = cause.getCause()) {
      String message = cause.getMessage();
      if (message != null && messages.stream().noneMatch(message::contains)) {
        messages.add(message);
      }
    }
    return String.join(": ", messages);
  }

  private static Response error(int status, String type, String message) {
    return Response.status(status).type(MediaType.APPLICATION_JSON)
        .entity(Map.of("type", type, "message", message)).build();
  }
}
